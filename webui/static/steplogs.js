/* BOSS web UI: a run's step logs (the run page's step panel). Loaded after
   boss.js and graphs.js; registers with BOSS.register. */
(function () {
  "use strict";
})();
