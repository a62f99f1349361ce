"""The packages (``packaging/``): the .deb built with dpkg-buildpackage and
installed on this machine, the RPM built with rpmbuild (docs/install.md).

Both are built once per module (``packaging/build.sh``, wheels from its
wheelhouse). Installing needs root: the .deb goes into the running system
with ``apt-get install ./boss_...deb``, its units pass ``systemd-analyze
verify``, the installed ``boss`` runs the demo and, with the services started as
their users, ``boss doctor`` finds no failure, then ``apt-get purge``
leaves the machine as it was (users, /opt/boss, /etc/boss, /var/lib/boss
gone). Missing tools are installed with apt-get when this is
root; otherwise the tests skip saying why, or fail with
``BOSS_REQUIRE_PACKAGING=1``.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import apt_get

ROOT = Path(__file__).resolve().parents[2]
UNITS = [
    "boss-worker@.service",
    "boss-aggregator.service",
    "boss-web.service",
    "boss-launcher@.service",
    "boss-reporter.service",
    "boss-valkey.service",
    "skynet.service",
]
#: what a unit's verification runs on: a template through one of its instances
INSTANCES = {
    "boss-worker@.service": "boss-worker@1.service",
    "boss-launcher@.service": "boss-launcher@obs.service",
}
TOOLS = {"dpkg-buildpackage": "dpkg-dev", "dh": "debhelper", "rpmbuild": "rpm"}

pytestmark = [pytest.mark.slow, pytest.mark.packaging, pytest.mark.timeout(900)]


def _unavailable(reason: str) -> None:
    if os.environ.get("BOSS_REQUIRE_PACKAGING") == "1":
        pytest.fail(f"packaging is required (BOSS_REQUIRE_PACKAGING=1) but {reason}")
    pytest.skip(f"{reason} (BOSS_REQUIRE_PACKAGING=1 fails instead)")


def _apt_get(*args: str) -> subprocess.CompletedProcess[str]:
    return apt_get(*args)


def _build_tools() -> None:
    missing = sorted({pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None})
    if not Path("/usr/bin/python3.11").exists():
        _unavailable("no /usr/bin/python3.11 (the packages' interpreter)")
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        _unavailable(f"{' '.join(missing)} missing and this is not root with apt-get")
    run = _apt_get("install", "-y", "-q", "--no-install-recommends", *missing)
    if run.returncode != 0:  # the package lists may be missing: update once
        _apt_get("update", "-q")
        run = _apt_get("install", "-y", "-q", "--no-install-recommends", *missing)
    if run.returncode != 0:
        _unavailable(f"apt-get install {' '.join(missing)} failed: {run.stderr[-500:]}")


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build the .deb and the RPM once: {"deb": path, "rpm": path}."""
    _build_tools()
    out = tmp_path_factory.mktemp("packages")
    t0 = time.monotonic()
    run = subprocess.run(
        ["sh", str(ROOT / "packaging" / "build.sh"), str(out)],
        env={**os.environ, "BOSS_PACKAGING_FAST": "1"},
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    print(f"packaging/build.sh built both packages in {time.monotonic() - t0:.1f}s")
    (deb,) = out.glob("boss_*.deb")
    (rpm,) = out.glob("boss-*.rpm")
    for p in (deb, rpm):
        print(f"{p.name}: {p.stat().st_size / 1e6:.1f} MB")
    return {"deb": deb, "rpm": rpm}


def test_the_deb_holds_the_units_config_and_virtualenv(packages: dict[str, Path]) -> None:
    listing = subprocess.run(
        ["dpkg-deb", "-c", str(packages["deb"])], capture_output=True, text=True, check=True
    ).stdout
    paths = {line.split()[5].lstrip(".") for line in listing.splitlines()}
    for unit in UNITS:
        assert f"/lib/systemd/system/{unit}" in paths, unit
    for path in (
        "/etc/boss/boss.ini",
        "/etc/boss/valkey.conf",
        "/etc/boss/skynet-supervisord.conf",
        "/opt/boss/bin/boss",
        "/opt/boss/bin/skynet",
        "/opt/boss/bin/boss-participant",
        "/opt/boss/bin/supervisord",
        "/opt/boss/bin/valkey-server",
        "/usr/bin/boss",
        "/usr/share/boss/processes/demo/pipeline.yaml",
        "/usr/share/doc/boss/install.md",
    ):
        assert path in paths, path
    assert re.search(r"-rw-r----- root/root .* \./etc/boss/boss\.ini", listing)
    info = subprocess.run(
        ["dpkg-deb", "-f", str(packages["deb"]), "Depends"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "python3.11" in info and "adduser" in info


def test_the_rpm_holds_the_same_units(packages: dict[str, Path]) -> None:
    listing = subprocess.run(
        ["rpm", "-qlp", str(packages["rpm"])], capture_output=True, text=True, check=True
    ).stdout.split()
    for unit in UNITS:
        assert f"/usr/lib/systemd/system/{unit}" in listing, unit
    for path in ("/etc/boss/boss.ini", "/opt/boss/bin/boss", "/usr/bin/boss"):
        assert path in listing, path
    scripts = subprocess.run(
        ["rpm", "-qp", "--scripts", str(packages["rpm"])],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "useradd -r -g boss " in scripts and "boss-participant" in scripts


def _installed() -> bool:
    probe = subprocess.run(["dpkg", "-s", "boss"], capture_output=True, text=True)
    return probe.returncode == 0 and "Status: install ok installed" in probe.stdout


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.fixture(scope="module")
def installed(packages: dict[str, Path]) -> Iterator[None]:
    """The .deb installed into this machine, purged afterwards."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        _unavailable("installing the .deb needs root and apt-get")
    if _installed():
        _unavailable("a boss package is already installed on this machine: not touching it")
    for path in ("/opt/boss", "/etc/boss", "/var/lib/boss"):
        if Path(path).exists():
            _unavailable(f"{path} exists: not touching this machine")
    t0 = time.monotonic()
    run = _apt_get("install", "-y", "-q", "--no-install-recommends", str(packages["deb"]))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    print(f"apt-get install took {time.monotonic() - t0:.1f}s")
    try:
        yield
    finally:  # test_purge_leaves_the_machine_as_it_was purged it, unless it failed first
        if _installed():
            _apt_get("purge", "-y", "-q", "boss")


def test_installed_users_dirs_and_units_verify(installed: None) -> None:
    assert _user_exists("boss") and _user_exists("boss-participant")
    assert (
        "boss"
        in subprocess.run(
            ["id", "-nG", "boss-participant"], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    st = Path("/var/lib/boss").stat()
    assert pwd.getpwuid(st.st_uid).pw_name == "boss"
    ini = Path("/etc/boss/boss.ini").stat()
    assert oct(ini.st_mode & 0o777) == "0o640"
    units = Path("/lib/systemd/system")
    paths = []
    for unit in UNITS:
        assert (units / unit).is_file(), unit
        paths.append(str(units / INSTANCES.get(unit, unit)))
    verify = subprocess.run(
        ["systemd-analyze", "verify", *paths], capture_output=True, text=True, timeout=120
    )
    out = verify.stdout + verify.stderr
    assert verify.returncode == 0, out
    # nothing to say: no missing executable, unknown key or bad value
    assert out.strip() == "", out


def test_the_installed_boss_runs_the_demo(installed: None, tmp_path: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("BOSS_", "PYTHON", "VIRTUAL_ENV"))
    }
    env["PATH"] = "/usr/bin:/bin:/usr/sbin:/sbin"
    env["BOSS_STATE_DIR"] = str(tmp_path / "state")

    def boss(*args: str, timeout: float = 60) -> str:
        run = subprocess.run(
            ["/usr/bin/boss", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        return run.stdout

    assert "0.1.0" in boss("--version")
    boss("check", "/usr/share/boss/processes/hello.yaml")
    for cmd in ("/usr/bin/skynet", "/usr/bin/boss-participant", "/opt/boss/bin/supervisord"):
        subprocess.run([cmd, "--help"], env=env, capture_output=True, check=True, timeout=60)
    version = subprocess.run(
        ["/opt/boss/bin/valkey-server", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert "Valkey" in version or "v=" in version
    t0 = time.monotonic()
    # the demo from the package: its embedded Valkey, worker, participants, web UI
    out = boss("demo", "--web", "127.0.0.1:0", timeout=240)
    print(f"the installed boss ran the demo in {time.monotonic() - t0:.1f}s")
    assert "store and broker: the embedded Valkey" in out, out
    assert "release candidate hello-c0ffee is ready" in out, out
    assert "stopped 7 processes and the embedded Valkey" in out, out


def _as(user: str, *argv: str) -> list[str]:
    """argv run as USER with its groups, as a unit's User= runs it (no systemd here)."""
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", *argv]


def test_the_services_run_as_their_users(installed: None) -> None:
    """What the units start, started as the units would: the embedded Valkey
    (boss-valkey) as boss, then the store reached by boss and by the
    participants' user, an engine worker (boss-worker@1), and SkyNET's
    supervisord (skynet) as boss-participant, answering `skynet status`."""
    if shutil.which("setpriv") is None:
        _unavailable("no setpriv (util-linux) to run the services as their users")
    env = {
        "PATH": "/usr/bin:/bin",
        "BOSS_CONFIG": "/etc/boss/boss.ini",
        "PYTHONUNBUFFERED": "1",
        "LANG": "C.UTF-8",
    }
    runtime = Path("/run/boss-skynet")  # the unit's RuntimeDirectory=
    procs: list[subprocess.Popen[bytes]] = []

    def start(user: str, *argv: str, cwd: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            _as(user, *argv), env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        procs.append(proc)
        return proc

    def output(user: str, *argv: str) -> str:
        run = subprocess.run(
            _as(user, *argv), env=env, cwd="/", capture_output=True, text=True, timeout=60
        )
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        return run.stdout

    try:
        start("boss", "/opt/boss/bin/valkey-server", "/etc/boss/valkey.conf", cwd="/var/lib/boss")
        deadline = time.monotonic() + 20
        while not Path("/var/lib/boss/valkey.sock").exists():
            assert time.monotonic() < deadline, "boss-valkey did not open its socket"
            time.sleep(0.1)
        assert "no runs" in output("boss", "/usr/bin/boss", "ps")
        assert "no runs" in output("boss-participant", "/usr/bin/boss", "ps")
        start(
            "boss",
            "/opt/boss/bin/boss",
            "worker",
            "--hostname",
            "boss-1@packaging-test",
            cwd="/var/lib/boss",
        )
        deadline = time.monotonic() + 60
        # a fresh store: any live worker is this one
        while not json.loads(output("boss", "/usr/bin/boss", "workers", "--json")):
            assert procs[-1].poll() is None, procs[-1].stdout.read().decode()[-2000:]
            assert time.monotonic() < deadline, "boss-worker@1 sent no heartbeat"
            time.sleep(0.5)
        # the installed doctor on the embedded store: no failure (warnings, such as
        # the aggregator process still starting or no participant, are allowed)
        doctor = subprocess.run(
            _as("boss", "/usr/bin/boss", "doctor", "--json"),
            env=env,
            cwd="/",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert doctor.returncode in (0, 2), doctor.stdout[-3000:] + doctor.stderr[-2000:]
        findings = {f["check"]: f for f in json.loads(doctor.stdout)["findings"]}
        assert findings["config"]["data"]["source"] == "/etc/boss/boss.ini"
        for check in ("store", "store.disk", "broker", "workers"):
            assert findings[check]["status"] == "ok", findings[check]
        assert "/var/lib/boss" in findings["store.disk"]["found"]
        runtime.mkdir(mode=0o750)
        shutil.chown(runtime, "boss-participant", "boss-participant")
        supervisord = start(
            "boss-participant",
            "/opt/boss/bin/supervisord",
            "-n",
            "-c",
            "/etc/boss/skynet-supervisord.conf",
            cwd="/var/lib/boss/skynet",
        )
        deadline = time.monotonic() + 20
        while not (runtime / "supervisor.sock").exists():
            assert supervisord.poll() is None, supervisord.stdout.read().decode()[-2000:]
            assert time.monotonic() < deadline, "skynet's supervisord opened no socket"
            time.sleep(0.1)
        status = subprocess.run(
            ["/usr/bin/skynet", "status"], env=env, capture_output=True, text=True, timeout=60
        )
        assert status.returncode == 0, status.stdout + status.stderr
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(runtime, ignore_errors=True)


def test_purge_leaves_the_machine_as_it_was(installed: None) -> None:
    """The last test of the module: ``apt-get remove`` keeps the state,
    ``apt-get purge`` removes it with the users and the configuration."""
    run = _apt_get("remove", "-y", "-q", "boss")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert not os.path.lexists("/opt/boss") and not os.path.lexists("/usr/bin/boss")
    assert Path("/var/lib/boss").is_dir() and Path("/etc/boss/boss.ini").is_file()
    assert _user_exists("boss")
    run = _apt_get("purge", "-y", "-q", "boss")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert not _installed()
    for path in ("/opt/boss", "/etc/boss", "/var/lib/boss", "/var/log/boss", "/usr/bin/boss"):
        assert not os.path.lexists(path), path
    assert not _user_exists("boss") and not _user_exists("boss-participant")
    units = [Path("/lib/systemd/system") / unit for unit in UNITS]
    assert not any(p.exists() for p in units)
