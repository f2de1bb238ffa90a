"""The `register_admin` hook: plugin pages in the menu, plugin actions CSRF-checked, role-checked and audited."""

from __future__ import annotations

from flask import flash, redirect

from plba import hookimpl
from tests.admin.conftest import console_settings, csrf_of, log_in


class ReportPlugin:
    """A plugin with one page and one operator action."""

    name = "report"

    def __init__(self) -> None:
        self.rebuilt = 0

    @hookimpl
    def register_admin(self, admin) -> None:
        """A "Report" page and a rebuild button."""
        def report():
            return admin.render("error.html", code="Report", message=f"rebuilt {self.rebuilt} <b>times</b>")

        def rebuild():
            self.rebuilt += 1
            flash("rebuilt", "ok")
            return redirect("/admin/plugins/report/page")

        admin.page("page", "Report", report)
        admin.action("rebuild", rebuild)


class BrokenPlugin:
    """A plugin whose hook raises."""

    name = "broken"

    @hookimpl
    def register_admin(self, admin) -> None:
        """Fails."""
        raise RuntimeError("no pages today")


def test_hook_register_admin(serve, accounts) -> None:
    plugin = ReportPlugin()
    runtime, _ = serve(plugin, BrokenPlugin(), settings=console_settings())
    client = runtime.control.app.test_client()
    log_in(client, "viewer")
    overview = client.get("/admin/").get_data(as_text=True)
    assert 'href="/admin/plugins/report/page">Report</a>' in overview
    page = client.get("/admin/plugins/report/page").get_data(as_text=True)
    assert "rebuilt 0 &lt;b&gt;times&lt;/b&gt;" in page
    token = csrf_of(page)
    assert client.post("/admin/plugins/report/rebuild", data={"csrf_token": token}).status_code == 403
    refused = runtime.actions.audit.recent(1)[0]
    assert (refused.actor, refused.action, refused.outcome) == ("viewer", "admin.report.rebuild", "refused")
    assert plugin.rebuilt == 0
    operator = runtime.control.app.test_client()
    log_in(operator, "operator")
    assert operator.post("/admin/plugins/report/rebuild").status_code == 400
    token = csrf_of(operator.get("/admin/plugins/report/page").get_data(as_text=True))
    assert operator.post("/admin/plugins/report/rebuild", data={"csrf_token": token}).status_code == 302
    assert plugin.rebuilt == 1
    event = runtime.actions.audit.recent(1)[0]
    assert (event.actor, event.action, event.outcome) == ("operator", "admin.report.rebuild", "ok")
