"""notify and notify_admin: mail over SMTP, from templates.

A template is text whose first lines are headers (``Subject:`` at least),
then a blank line, then the body. ``${name}`` in it is replaced by a value
of the workitem: a dotted path into the fields (``${ev.id}``,
``${ev.actions.0.targetproject}``), else into the params; ``${msg}`` is the
``msg`` lines, one per line; a missing value becomes the empty string (as in
process definitions); ``$$`` is a dollar. Templates are looked up in
``[notify] template_dir`` (a file named after the template, with or without
``.txt``), then among the built-in ones: ``default``, ``SR_SUCCESS``,
``SR_FAILURE``, ``SR_ERROR``, ``ADMIN``, ``COMMIT_FAILURE``,
``PROMOTION_REMINDER``, ``BUILD_SUCCESS``, ``CI_ALERT``.

Params
------

| param | meaning |
|---|---|
| ``template`` | the template's name (default ``default``; ``notify_admin``: ``ADMIN``) |
| ``mail_to`` (or ``to``) | the recipients: a list or a comma separated string |
| ``cc`` | more recipients (Cc) |
| ``subject`` | overrides the template's subject |
| ``msg`` | the lines for ``${msg}`` (default the ``msg`` field) |
| ``error`` | ``notify_admin``: the ``__error__`` mapping (``${error.message}``) |

Fields: reads whatever the template names; ``notify_admin`` sends to the
``admin_email`` field when the step names no ``mail_to``, else to
``[notify] admin``. Writes ``mail_sent: {to, subject, template}``. No
recipient at all is an error of the step. A refused mail (the server says
no, or is down after ``retries`` attempts) fails the step with the
server's answer.

Configuration (``[notify]``)
----------------------------

| key | default | meaning |
|---|---|---|
| ``smtp_host`` | ``localhost`` | |
| ``smtp_port`` | 25 | |
| ``from`` | ``boss@localhost`` | the sender |
| ``starttls`` | false | STARTTLS before sending |
| ``ssl`` | false | SMTP over TLS (port 465) |
| ``user``, ``password`` | none | SMTP AUTH |
| ``template_dir`` | none | where site templates are |
| ``admin`` | none | ``notify_admin``'s recipient when the workitem names none |
| ``timeout`` | 30 | seconds for the SMTP conversation |
| ``retries`` | 3 | attempts when the server cannot be reached |
| ``retry_delay`` | 2 | seconds between attempts |

BOSS's notify participant
-------------------------

``notify`` is the successor of the BOSS standard workflow's ``notify.py``,
which does not run on Python 3 (its ``fixup_utf8`` calls ``str.decode``). A
site replaces the program file's ``code`` and keeps its ``notify.conf`` and
templates:

* ``smtp_server`` (``host[:port]``), ``email_store`` and
  ``default_sender`` are read as ``smtp_host``/``smtp_port``,
  ``template_dir`` and ``from``;
* ``template_syntax = cheetah`` (the default when ``email_store`` is given):
  templates are BOSS's Cheetah templates (the body only; needs Cheetah3,
  ``pip install CT3``), rendered with ``$f`` the fields and ``$req`` the
  ``req`` field, where a missing key reads as empty; the subject is
  ``params.subject`` or ``fields.subject`` (required), the sender
  ``mail_from``;
* recipients are ``fields.mail_to`` + ``params.mail_to`` (Cc ``mail_cc``,
  both) as BOSS merged them, and the fields' lists are emptied once read; no
  recipient at all sends nothing, adds a line to ``msg`` and is not an
  error; ``__result__`` is true once the mail is sent.

Example INI::

    [participant]
    name = notify
    code = participants.standard.notify
    class = Notify

    [notify]
    smtp_host = mail.example.org
    from = boss@example.org
    template_dir = /etc/boss/templates
"""

from __future__ import annotations

import re
import smtplib
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from participants.handler import LifecycleControl, Participant
from participants.standard.config import Section, as_lines, as_list
from participants.workitem import Workitem, lookup_path

__all__ = ["BUILTIN_TEMPLATES", "Notify", "NotifyAdmin", "ParticipantHandler", "render"]

BUILTIN_TEMPLATES: dict[str, str] = {
    "default": "Subject: [BOSS] ${wf_name} ${status}\n\n${msg}\n",
    "SR_SUCCESS": (
        "Subject: [BOSS] request ${ev.id} accepted\n\n"
        "Submit request ${ev.id} by ${ev.who} was accepted.\n\n${msg}\n"
    ),
    "SR_FAILURE": (
        "Subject: [BOSS] request ${ev.id} rejected\n\n"
        "Submit request ${ev.id} by ${ev.who} was rejected:\n\n${msg}\n"
    ),
    "SR_ERROR": (
        "Subject: [BOSS] request ${ev.id}: error\n\n"
        "Handling submit request ${ev.id} failed; an administrator was told.\n\n${msg}\n"
    ),
    "ADMIN": (
        "Subject: [BOSS] ${wf_name} needs attention\n\n"
        "Run ${wfid} (${wf_name}) needs attention.\n\n"
        "Error: ${error.message} (${error.class} in ${error.participant} at ${error.at})\n\n"
        "${msg}\n"
    ),
    "COMMIT_FAILURE": (
        "Subject: [BOSS] ${ev.project}/${ev.package}: commit ${ev.rev} fails its checks\n\n"
        "The commit ${ev.rev} by ${ev.user} to ${ev.project}/${ev.package} "
        "fails its checks:\n\n${msg}\n"
    ),
    "PROMOTION_REMINDER": (
        "Subject: [BOSS] reminder: ${artifact_identity} awaits promotion\n\n"
        "${artifact_identity} has been a release candidate since ${rc_since} and is not "
        "promoted yet (reminder ${reminder} of ${reminders}).\n\n${msg}\n"
    ),
    "BUILD_SUCCESS": (
        "Subject: [BOSS] ${ev.project}/${ev.package} built on ${ev.repository}/${ev.arch}\n\n"
        "${msg}\n"
    ),
    # processes/radar/ci_alert.yaml (``boss ci watch``: fields.radar)
    "CI_ALERT": "Subject: [BOSS] ${msg}\n\n${msg}\n\n${radar.reasons}\n",
}

_PLACEHOLDER = re.compile(r"\$(?:\$|\{([^{}]+)\})")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return "\n".join(_text(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render(template: str, context: dict[str, Any]) -> tuple[dict[str, str], str]:
    """(headers, body) of ``template`` with ``${...}`` substituted from
    ``context``."""
    text = _PLACEHOLDER.sub(
        lambda m: "$" if m.group(0) == "$$" else _text(lookup_path(context, m.group(1).strip())),
        template,
    )
    head, sep, body = text.partition("\n\n")
    if not sep:
        raise ValueError("a template starts with headers (Subject: ...), then a blank line")
    headers: dict[str, str] = {}
    for line in head.splitlines():
        key, colon, value = line.partition(":")
        if not colon:
            raise ValueError(f"template header line {line!r} is not 'Name: value'")
        headers[key.strip()] = value.strip()
    return headers, body


class Notify(Participant):
    """The ``notify`` participant (see the module's docstring)."""

    default_template = "default"

    def handle_lifecycle_control(self, ctrl: LifecycleControl) -> None:
        super().handle_lifecycle_control(ctrl)
        if ctrl.message == "start":
            cfg = Section(ctrl.config, "notify")
            self.host = cfg.get("smtp_host", "localhost")
            self.port = cfg.int("smtp_port", 25)
            self.sender = cfg.get("from", "boss@localhost")
            self.starttls = cfg.bool("starttls", False)
            self.use_ssl = cfg.bool("ssl", False)
            self.user = cfg.get("user")
            self.password = cfg.get("password")
            # BOSS notify.conf's keys (smtp_server, email_store, default_sender)
            server = cfg.get("smtp_server")
            if server and not cfg.get("smtp_host"):
                host, _, port = server.strip().partition(":")
                self.host = host
                self.port = int(port) if port else self.port
            self.sender = cfg.get("from") or cfg.get("default_sender") or self.sender
            self.template_dir = cfg.get("template_dir") or cfg.get("email_store")
            syntax = cfg.get("template_syntax") or ("cheetah" if cfg.get("email_store") else "boss")
            if syntax not in ("boss", "cheetah"):
                raise ValueError(
                    f"[notify] template_syntax must be boss or cheetah, got {syntax!r}"
                )
            self.syntax = syntax
            if syntax == "cheetah":
                _cheetah()  # fail at start, not on the first mail
            self.admin = cfg.get("admin")
            self.timeout = cfg.float("timeout", 30.0)
            self.retries = max(1, cfg.int("retries", 3))
            self.retry_delay = cfg.float("retry_delay", 2.0)

    def template(self, name: str) -> str:
        if self.template_dir:
            for candidate in (name, name + ".txt"):
                path = Path(self.template_dir) / candidate
                if path.is_file():
                    return path.read_text(encoding="utf-8")
        if name in BUILTIN_TEMPLATES:
            return BUILTIN_TEMPLATES[name]
        raise ValueError(
            f"no mail template {name!r} (in {self.template_dir or 'no template_dir'} "
            f"nor built in: {', '.join(sorted(BUILTIN_TEMPLATES))})"
        )

    def recipients(self, wi: Workitem) -> list[str]:
        return as_list(wi.params.get("mail_to") or wi.params.get("to"))

    def context(self, wi: Workitem) -> dict[str, Any]:
        params = {k: v for k, v in wi.params.items()}
        fields = {k: v for k, v in wi.fields.items() if k != "params"}
        ctx = {"wfid": wi.wfid, "wf_name": wi.wf_name, **params, **fields}
        ctx["msg"] = as_lines(params["msg"] if "msg" in params else fields.get("msg"))
        return ctx

    def handle_wi(self, wi: Workitem) -> None:
        if getattr(self, "syntax", "boss") == "cheetah":
            self.handle_boss_notification(wi)
            return
        name = str(wi.params.get("template") or self.default_template)
        to = self.recipients(wi)
        cc = as_list(wi.params.get("cc"))
        if not to and not cc:
            raise ValueError(f"{wi.participant_name or 'notify'}: no recipient (params.mail_to)")
        headers, body = render(self.template(name), self.context(wi))
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = ", ".join(to)
        if cc:
            mail["Cc"] = ", ".join(cc)
        mail["Subject"] = str(wi.params.get("subject") or headers.pop("Subject", "[BOSS]"))
        headers.pop("Subject", None)
        for key, value in headers.items():
            mail[key] = value
        mail["Date"] = formatdate(localtime=True)
        mail["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        mail["X-BOSS-Run"] = str(wi.wfid or "")
        mail.set_content(body)
        self.send(mail, to + cc)
        wi.fields["mail_sent"] = {"to": to + cc, "subject": str(mail["Subject"]), "template": name}

    def handle_boss_notification(self, wi: Workitem) -> None:
        """What BOSS's notify.py did with a workitem (see the module's
        docstring), with its Cheetah templates."""
        wi.result = False
        if not wi.fields.get("msg"):
            wi.fields["msg"] = []
        params, fields = wi.params, wi.fields
        subject = params.get("subject") or fields.get("subject")
        body = params.get("template_body") or fields.get("template_body")
        name = params.get("template") or fields.get("template")
        sender = params.get("mail_from") or fields.get("mail_from") or self.sender
        to = as_list(fields.get("mail_to")) + as_list(params.get("mail_to"))
        cc = as_list(fields.get("mail_cc")) + as_list(params.get("mail_cc"))
        fields["mail_to"] = []
        fields["mail_cc"] = []
        if params.get("extra_msg"):
            fields["msg"].append(params["extra_msg"])
        if not subject:
            raise ValueError("Missing mandatory field or param 'subject'")
        if bool(body) == bool(name):
            raise ValueError("give one of 'template_body' and 'template' (field or param)")
        to = list(dict.fromkeys(to))
        cc = [a for a in dict.fromkeys(cc) if a not in to]
        if not to and not cc:
            fields["msg"].append("No recipients listed; not sending mail.")
            wi.result = True
            return
        if name:
            body = self.template(str(name))
        plain = wi.to_dict()["fields"]
        search = {"f": _Forgiving.of(plain)}
        search["req"] = search["f"]["req"] or _Forgiving()
        text = str(_cheetah()(body, searchList=[search]))
        mail = EmailMessage()
        mail["From"] = sender
        if to:
            mail["To"] = ", ".join(to)
        if cc:
            mail["Cc"] = ", ".join(cc)
        mail["Subject"] = str(subject)
        mail["Date"] = formatdate(localtime=True)
        mail["Message-ID"] = make_msgid(domain=str(sender).rpartition("@")[2] or None)
        mail["X-BOSS-Run"] = str(wi.wfid or "")
        mail.set_content(text)
        self.send(mail, to + cc)
        fields["mail_sent"] = {"to": to + cc, "subject": str(subject), "template": name}
        wi.result = True

    def send(self, mail: EmailMessage, rcpt: list[str]) -> None:
        last: BaseException | None = None
        for attempt in range(1, self.retries + 1):
            try:
                cls = smtplib.SMTP_SSL if self.use_ssl else smtplib.SMTP
                with cls(self.host, self.port, timeout=self.timeout) as smtp:
                    if self.starttls:
                        smtp.starttls()
                    if self.user:
                        smtp.login(self.user, self.password)
                    refused = smtp.send_message(mail, to_addrs=rcpt)
                if refused:
                    raise RuntimeError(
                        f"SMTP server {self.host}:{self.port} refused {sorted(refused)}"
                    )
                return
            except smtplib.SMTPResponseException as exc:  # the server answered: no retry
                raise RuntimeError(
                    f"SMTP server {self.host}:{self.port} refused the mail: "
                    f"{exc.smtp_code} {exc.smtp_error!r}"
                ) from exc
            except smtplib.SMTPRecipientsRefused as exc:
                raise RuntimeError(
                    f"SMTP server {self.host}:{self.port} refused every recipient: {exc.recipients}"
                ) from exc
            except (OSError, smtplib.SMTPException) as exc:
                last = exc
                if attempt < self.retries:
                    time.sleep(self.retry_delay)
        raise RuntimeError(
            f"cannot send mail through {self.host}:{self.port} after "
            f"{self.retries} attempts: {last}"
        )


def _cheetah() -> Any:
    """Cheetah's Template class (BOSS's templates need it)."""
    try:
        from Cheetah.Template import Template
    except ImportError as exc:  # pragma: no cover -- depends on the install
        raise RuntimeError(
            "[notify] template_syntax = cheetah needs Cheetah3: pip install CT3"
        ) from exc
    return Template


class _Forgiving(dict):
    """BOSS's ForgivingDict: an unknown key reads as an empty one of these,
    which prints as the empty string and iterates as nothing, so a template
    never fails on a missing field."""

    def __missing__(self, key: Any) -> _Forgiving:
        return _Forgiving()

    def __str__(self) -> str:
        return dict.__str__(self) if self else ""

    @classmethod
    def of(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return cls({k: cls.of(v) for k, v in value.items()})
        if isinstance(value, list):
            return [cls.of(v) for v in value]
        return value


class NotifyAdmin(Notify):
    """``notify_admin``: ``notify`` with the ``ADMIN`` template, sent to the
    ``admin_email`` field (or ``[notify] admin``) unless the step names
    ``mail_to``."""

    default_template = "ADMIN"

    def recipients(self, wi: Workitem) -> list[str]:
        return (
            super().recipients(wi) or as_list(wi.fields.get("admin_email")) or as_list(self.admin)
        )


ParticipantHandler = Notify
