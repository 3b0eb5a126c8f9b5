"""``{% progress_bar %}``: the markup the script follows, for a task and for a group."""

from __future__ import annotations

from django.template import Context, Template


def _render(source: str, **context: object) -> str:
    return Template("{% load celery_progress_mcp %}" + source).render(Context(context))


def test_a_bar_points_at_the_tasks_url_and_loads_the_script() -> None:
    html = _render("{% progress_bar task_id %}", task_id="3f2c-task")
    assert 'data-celery-progress-url="/progress/3f2c-task/"' in html
    assert 'class="cpm-bar-fill"' in html
    assert 'class="cpm-sub-operations"' in html
    assert '<script src="/static/celery_progress_mcp/celery_progress_mcp.js" defer>' in html
    assert "style=" not in html  # nothing a strict Content-Security-Policy would block


def test_a_group_bar_and_an_escaped_label() -> None:
    html = _render(
        "{% progress_bar group_id group=True label=name %}", group_id="g-1", name='<b>"x"'
    )
    assert 'data-celery-progress-url="/progress/g/g-1/"' in html
    assert 'aria-label="&lt;b&gt;&quot;x&quot;"' in html
