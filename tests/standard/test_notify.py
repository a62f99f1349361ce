"""notify and notify_admin against a real SMTP server in the test (aiosmtpd)."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from participants.standard.notify import Notify, NotifyAdmin, render
from tests.standard.conftest import started, workitem


class Inbox:
    def __init__(self) -> None:
        self.mails: list[tuple[list[str], email.message.EmailMessage]] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address.endswith("@nowhere.invalid"):
            return "550 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.mails.append((list(envelope.rcpt_tos), msg))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    with socket.socket() as s:  # a free port (aiosmtpd's Controller cannot take port 0)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def _notify(port: int, cls: type = Notify, **extra: Any) -> Any:
    return started(
        cls(),
        {
            "notify": {
                "smtp_host": "127.0.0.1",
                "smtp_port": port,
                "from": "boss@example.org",
                "retry_delay": 0.05,
                **extra,
            }
        },
    )


EV = {"id": "42", "who": "alice", "target_project": "Mer:Tools"}


def test_sr_template_mail_arrives(smtp):
    inbox, port = smtp
    wi = workitem(
        {"ev": EV, "status": "FAILURE", "msg": ["check_spec: no spec file"]},
        {"template": "SR_FAILURE", "mail_to": ["rel@example.org", "qa@example.org"]},
    )
    _notify(port).handle_wi(wi)
    assert len(inbox.mails) == 1
    rcpt, mail = inbox.mails[0]
    assert rcpt == ["rel@example.org", "qa@example.org"]
    assert mail["Subject"] == "[BOSS] request 42 rejected"
    assert mail["From"] == "boss@example.org"
    body = mail.get_content()
    assert "Submit request 42 by alice was rejected" in body
    assert "check_spec: no spec file" in body
    assert wi.fields["mail_sent"]["to"] == rcpt


def test_site_template_dir_dotted_paths_and_subject_override(smtp, tmp_path):
    inbox, port = smtp
    (tmp_path / "custom.txt").write_text(
        "Subject: ignored\nX-Project: ${ev.target_project}\n\n"
        "first action to ${ev.actions.0.targetproject}; cost $$5; missing '${nope}'\n${msg}\n"
    )
    ev = {**EV, "actions": [{"targetproject": "Mer:Core"}]}
    _notify(port, template_dir=tmp_path).handle_wi(
        workitem(
            {"ev": ev, "msg": ["a", "b"]},
            {"template": "custom", "to": "x@example.org", "subject": "hello"},
        )
    )
    _, mail = inbox.mails[0]
    assert mail["Subject"] == "hello" and mail["X-Project"] == "Mer:Tools"
    assert (
        mail.get_content().replace("\r\n", "\n")
        == "first action to Mer:Core; cost $5; missing ''\na\nb\n"
    )


def test_notify_admin_goes_to_admin_email_with_the_error(smtp):
    inbox, port = smtp
    error = {"message": "boom", "class": "RuntimeError", "participant": "check_spec", "at": "now"}
    _notify(port, NotifyAdmin).handle_wi(
        workitem({"admin_email": "admin@example.org", "msg": []}, {"error": error})
    )
    rcpt, mail = inbox.mails[0]
    assert rcpt == ["admin@example.org"]
    assert "Error: boom (RuntimeError in check_spec at now)" in mail.get_content()


def test_refused_recipient_and_no_recipient_and_unknown_template_are_clear_errors(smtp):
    inbox, port = smtp
    bot = _notify(port)
    with pytest.raises(RuntimeError, match="refused every recipient"):
        bot.handle_wi(workitem({}, {"mail_to": "ghost@nowhere.invalid"}))
    with pytest.raises(ValueError, match="no recipient"):
        bot.handle_wi(workitem({}, {}))
    with pytest.raises(ValueError, match="no mail template 'NOPE'"):
        bot.handle_wi(workitem({}, {"template": "NOPE", "mail_to": "a@example.org"}))
    assert inbox.mails == []


def test_server_down_is_retried_then_a_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bot = _notify(port, retries=2)
    with pytest.raises(
        RuntimeError,
        match=rf"cannot send mail through 127.0.0.1:{port} "
        "after 2 attempts",
    ):
        bot.handle_wi(workitem({}, {"mail_to": "a@example.org"}))


def test_render_needs_headers():
    assert render("Subject: ${a}\n\nbody ${b.c}", {"a": 1, "b": {"c": [1, 2]}}) == (
        {"Subject": "1"},
        "body 1\n2",
    )
    with pytest.raises(ValueError, match="starts with headers"):
        render("no headers here", {})


# -- the successor of BOSS's notify.py: its notify.conf and Cheetah templates -----------


def _boss_notify(port: int, templates: Any) -> Any:
    """Started with the keys of the real conf/notify.conf (BOSS's names)."""
    return started(
        Notify(),
        {
            "notify": {
                "smtp_server": f"127.0.0.1:{port}",
                "email_store": str(templates),
                "default_sender": "boss_no_reply@example.org",
                "allowed_attachment_dirs": "/tmp",
                "retry_delay": 0.05,
            }
        },
    )


def test_boss_notify_conf_and_the_real_accept_template(smtp, compat_dir):
    inbox, port = smtp
    templates = compat_dir / "boss-standard-workflow" / "templates"
    wi = workitem(
        {
            "ev": {"id": "42"},
            "obsurl": "https://build.example.org",
            "author": {"realname": "Jane Doe"},
            "msg": ["check_spec ok"],
            # get_notify_recipients_obs's fields, merged with the param
            "mail_to": ["jdoe@example.org"],
            "mail_cc": ["maint@example.org"],
            "req": {"actions": [{"target": {"project": "Mer:Core", "package": "bash"}}]},
        },
        {
            "template": "accept-notice",
            "mail_to": ["release@example.org"],
            "subject": "[BOSS] SR#42 Accepted promotion request",
        },
    )
    _boss_notify(port, templates).handle_wi(wi)
    [(rcpt, mail)] = inbox.mails
    assert rcpt == ["jdoe@example.org", "release@example.org", "maint@example.org"]
    assert mail["Subject"] == "[BOSS] SR#42 Accepted promotion request"
    assert mail["From"] == "boss_no_reply@example.org"
    assert mail["Cc"] == "maint@example.org"
    body = mail.get_content()
    assert "Thanks for your contribution Jane Doe" in body
    assert "Mer:Core / bash" in body
    assert "https://build.example.org/request/show/42" in body
    assert "     check_spec ok" in body
    # BOSS's notify consumed the recipient fields and said it was done
    assert wi.fields["mail_to"] == [] and wi.fields["mail_cc"] == []
    assert wi.result is True


def test_boss_notify_without_recipients_sends_nothing_and_says_so(smtp, compat_dir):
    inbox, port = smtp
    templates = compat_dir / "boss-standard-workflow" / "templates"
    wi = workitem({"ev": {"id": "1"}}, {"template": "reject-notice", "subject": "s"})
    _boss_notify(port, templates).handle_wi(wi)
    assert inbox.mails == []
    assert wi.fields["msg"] == ["No recipients listed; not sending mail."]
    assert wi.result is True
    no_subject = workitem({"mail_to": ["a@example.org"]}, {"template": "reject-notice"})
    with pytest.raises(ValueError, match="'subject'"):
        _boss_notify(port, templates).handle_wi(no_subject)
