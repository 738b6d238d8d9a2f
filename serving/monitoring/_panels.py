"""What the dashboards show: every panel and its PromQL, as data (no Grafana types here).

Queries use Grafana's ``$model`` variable and ``$__rate_interval``; :func:`expand` turns
them into plain PromQL for Prometheus's HTTP API (the integration test runs every one).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from serving._config import GavelModel

RI = "$__rate_interval"
M = 'model=~"$model"'
MN = 'model_name=~"$model"'
"""vLLM's engine metrics name the model ``model_name``."""


class Query(GavelModel):
    """One PromQL expression of a panel and the legend of its series."""

    expr: Annotated[str, Field(min_length=1)]
    legend: str = ""


class Panel(GavelModel):
    """One dashboard panel."""

    title: str
    description: str
    unit: str = "short"
    kind: Literal["timeseries", "stat"] = "timeseries"
    queries: Annotated[list[Query], Field(min_length=1)]


class Row(GavelModel):
    """A titled row of panels."""

    title: str
    panels: list[Panel]


class DashboardSpec(GavelModel):
    """One dashboard: its uid (stable, so imports replace it), title and rows."""

    uid: Annotated[str, Field(pattern=r"^[a-z0-9-]{1,40}$")]
    title: str
    description: str
    rows: list[Row]


def _q(expr: str, legend: str = "") -> Query:
    return Query(expr=expr, legend=legend)


def _quantiles(metric: str, by: str = "model") -> list[Query]:
    return [
        _q(
            f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{{{M}}}[{RI}])))",
            f"{{{{{by}}}}} p{int(q * 100)}",
        )
        for q in (0.5, 0.9, 0.99)
    ]


def _or_zero(numerator: str, like: str) -> str:
    """``numerator``, or 0 for every series of ``like`` where it has none (so a panel
    shows 0 errors rather than "no data")."""
    return f"({numerator} or {like} * 0)"


def _serving() -> DashboardSpec:
    return DashboardSpec(
        uid="gavel-serving", title="Gavel / Serving",
        description="Traffic, latency (by output length), SLOs, vLLM engines, capture.",
        rows=[_traffic(), _latency(), _engine(), _capture(), _loadtest()],
    )  # fmt: skip


def _traffic() -> Row:
    req = f"sum by (model) (rate(gavel_requests_total{{{M}}}[{RI}]))"
    err = f'sum by (model) (rate(gavel_requests_total{{{M},status!~"2.."}}[{RI}]))'
    return Row(title="Traffic", panels=[
        Panel(title="Requests by status", unit="reqps",
              description="Requests that reached a model, per second, by HTTP status and "
                          "source (production, judge, eval).",
              queries=[_q(f"sum by (model, status, source) (rate(gavel_requests_total{{{M}}}"
                          f"[{RI}]))", "{{model}} {{status}} {{source}}")]),
        Panel(title="Error ratio", unit="percentunit",
              description="Share of requests that reached a model and did not return 2xx.",
              queries=[_q(f"{_or_zero(err, req)} / {req}", "{{model}}")]),
        Panel(title="Refused by the gateway", unit="reqps",
              description="Requests refused before a model (missing or bad key, scope, "
                          "rate limit, limiter away), by reason.",
              queries=[_q(f"sum by (reason) (rate(gavel_rejected_requests_total[{RI}]))",
                          "{{reason}}")]),
        Panel(title="In flight and engine queue", unit="short",
              description="Requests in flight at the gateway; requests running and waiting "
                          "in each vLLM engine.",
              queries=[_q(f"sum by (model) (gavel_in_flight_requests{{{M}}})",
                          "{{model}} in flight"),
                       _q(f"sum by (model_name) (ray_vllm_num_requests_running{{{MN}}})",
                          "{{model_name}} running"),
                       _q(f"sum by (model_name) (ray_vllm_num_requests_waiting{{{MN}}})",
                          "{{model_name}} waiting")]),
        Panel(title="Output tokens per second", unit="short",
              description="Completion tokens served per second, by source.",
              queries=[_q(f"sum by (model, source) (rate(gavel_output_tokens_total{{{M}}}"
                          f"[{RI}]))", "{{model}} {{source}}")]),
    ])  # fmt: skip


def _latency() -> Row:
    return Row(title="Latency", panels=[
        Panel(title="Time to first token", unit="s",
              description="TTFT at the gateway (successful requests), p50/p90/p99.",
              queries=_quantiles("gavel_ttft_seconds")),
        Panel(title="Time per output token", unit="s",
              description="Mean time per output token after the first, p50/p90/p99.",
              queries=_quantiles("gavel_tpot_seconds")),
        Panel(title="End-to-end latency", unit="s",
              description="Request latency at the gateway, p50/p90/p99.",
              queries=_quantiles("gavel_e2e_seconds")),
        Panel(title="End-to-end p90 by output length", unit="s",
              description="How latency grows with output length: p90 per output-length "
                          "bucket (tokens).",
              queries=[_q(f"histogram_quantile(0.9, sum by (le, output_len) "
                          f"(rate(gavel_e2e_seconds_bucket{{{M}}}[{RI}])))", "{{output_len}}")]),
        Panel(title="TTFT p90 by output length", unit="s",
              description="Time to first token, p90 per output-length bucket (tokens).",
              queries=[_q(f"histogram_quantile(0.9, sum by (le, output_len) "
                          f"(rate(gavel_ttft_seconds_bucket{{{M}}}[{RI}])))", "{{output_len}}")]),
        Panel(title="SLO attainment", unit="percentunit",
              description="Share of successful requests meeting the configured TTFT and "
                          "TPOT targets, next to the objective.",
              queries=[_q(f'sum by (model, slo) (rate(gavel_slo_requests_total{{{M},result="met"}}'
                          f"[{RI}])) / sum by (model, slo) (rate(gavel_slo_requests_total{{{M}}}"
                          f"[{RI}]))", "{{model}} {{slo}}"),
                       _q(f"max by (model, slo) (gavel_slo_objective{{{M}}})",
                          "{{model}} {{slo}} objective")]),
    ])  # fmt: skip


def _engine() -> Row:
    return Row(title="Engine (vLLM)", panels=[
        Panel(title="KV-cache usage", unit="percentunit",
              description="Share of each engine's KV cache in use.",
              queries=[_q(f"max by (model_name) (ray_vllm_kv_cache_usage_perc{{{MN}}})",
                          "{{model_name}}")]),
        Panel(title="Prefix-cache hit rate", unit="percentunit",
              description="Share of prompt tokens served from the prefix cache.",
              queries=[_q(
                  _or_zero(f'sum by (model_name) (rate(ray_vllm_prefix_cache_hits_total'
                           f'{{model_name=~"$model"}}[{RI}]))',
                           f'sum by (model_name) (rate(ray_vllm_prefix_cache_queries_total'
                           f'{{model_name=~"$model"}}[{RI}]))')
                  + f' / sum by (model_name) (rate(ray_vllm_prefix_cache_queries_total'
                    f'{{model_name=~"$model"}}[{RI}]))', "{{model_name}}")]),
        Panel(title="Engine TTFT p90", unit="s",
              description="Time to first token inside vLLM (without the gateway and Serve).",
              queries=[_q(f"histogram_quantile(0.9, sum by (le, model_name) (rate("
                          f'ray_vllm_time_to_first_token_seconds_bucket{{model_name=~"$model"}}'
                          f"[{RI}])))", "{{model_name}}")]),
    ])  # fmt: skip


def _capture() -> Row:
    return Row(title="Capture and store", panels=[
        Panel(title="Capture queue and spool", unit="short",
              description="Captured records waiting in memory, and spooled to disk while "
                          "the store is away (should drain to 0).",
              queries=[_q("sum(gavel_capture_queue_depth)", "queued"),
                       _q("sum(gavel_capture_spool_records)", "spooled")]),
        Panel(title="Capture writes and quarantine", unit="short",
              description="Records written to the store per second; records the store "
                          "refused (quarantined) and failed spool writes.",
              queries=[_q(f"sum(rate(gavel_capture_written_records_total[{RI}]))", "written"),
                       _q(f"sum(increase(gavel_capture_quarantined_records_total[{RI}]))",
                          "quarantined"),
                       _q(f"sum(increase(gavel_capture_spool_errors_total[{RI}]))",
                          "spool errors")]),
        Panel(title="Store reachable", kind="stat", unit="short",
              description="1 when the last key lookup and capture write reached the store.",
              queries=[_q("min(gavel_store_up)", "store up")]),
    ])  # fmt: skip


def _loadtest() -> Row:
    return Row(title="Load test (last sweep)", panels=[
        Panel(title="Load test p50 latency by output length", unit="s",
              description="The last `gavel loadtest sweep`: p50 TTFT, TPOT and end-to-end "
                          "per output length and concurrency.",
              queries=[_q(f"max by (output_len, concurrency) ({m}{{{M}}})",
                          f"{name} out={{{{output_len}}}} c={{{{concurrency}}}}")
                       for name, m in (("ttft", "gavel_loadtest_ttft_p50_seconds"),
                                       ("tpot", "gavel_loadtest_tpot_p50_seconds"),
                                       ("e2e", "gavel_loadtest_e2e_p50_seconds"))]),
        Panel(title="Load test throughput", unit="short",
              description="Output tokens per second per cell of the last sweep.",
              queries=[_q(f"max by (output_len, concurrency) "
                          f"(gavel_loadtest_output_tokens_per_second{{{M}}})",
                          "out={{output_len}} c={{concurrency}}")]),
    ])  # fmt: skip


def _cost() -> DashboardSpec:
    cost = f"gavel_cost_usd_total{{{M}}}"
    prod = f'{{{M},source="production"}}'
    rows = [
        Row(title="Spend", panels=[
            Panel(title="USD per hour by model", unit="currencyUSD",
                  description="Cost of served requests per hour, by model and source.",
                  queries=[_q(f"sum by (model, source) (rate({cost}[{RI}])) * 3600",
                              "{{model}} {{source}}")]),
            Panel(title="USD per day by model", unit="currencyUSD",
                  description="Cost over the last 24 hours, by model and source.",
                  queries=[_q(f"sum by (model, source) (increase({cost}[1d]))",
                              "{{model}} {{source}}")]),
            Panel(title="USD per hour by key", unit="currencyUSD",
                  description="Cost per hour by API key name.",
                  queries=[_q(f"sum by (key_name, model) (rate(gavel_key_cost_usd_total{{{M}}}"
                              f"[{RI}])) * 3600", "{{key_name}} {{model}}")]),
            Panel(title="USD per day by key", unit="currencyUSD",
                  description="Cost over the last 24 hours by API key name.",
                  queries=[_q(f"sum by (key_name, model) (increase(gavel_key_cost_usd_total"
                              f"{{{M}}}[1d]))", "{{key_name}} {{model}}")]),
        ]),
        Row(title="Unit cost", panels=[
            Panel(title="USD per 1M output tokens: measured vs load test", unit="currencyUSD",
                  description="Production cost per 1M completion tokens from the gateway's "
                              "counters, next to the last load test's figure.",
                  queries=[_q(f"sum by (model) (rate(gavel_cost_usd_total{prod}[{RI}])) / "
                              f"sum by (model) (rate(gavel_output_tokens_total{prod}[{RI}])) "
                              "* 1e6", "{{model}} measured"),
                           _q(f"min by (model) (gavel_loadtest_cost_per_mtok_usd{{{M}}})",
                              "{{model}} load test (best cell)")]),
        ]),
    ]  # fmt: skip
    return DashboardSpec(uid="gavel-cost", title="Gavel / Cost",
                         description="Spend per hour and day by model and key; unit cost.",
                         rows=rows)  # fmt: skip


def _within_the_hour(crit: str) -> Row:
    """Online judging's last hour and users' feedback (the quality dashboard's row)."""
    return Row(title="Within the hour: online judging and users' feedback", panels=[
        Panel(title="Online pass rate, last hour, with 95% interval", unit="percentunit",
              description="`gavel judge online`: each criterion's pass rate over the last "
                          "hour's picked records (GavelOnlinePassRateDrop compares its "
                          "upper bound with the trailing days').",
              queries=[_q(f"gavel_judge_online_pass_rate{{{crit},{M}}}",
                          "{{criterion}} {{model}}"),
                       _q(f"gavel_judge_online_pass_rate_low{{{crit},{M}}}",
                          "{{criterion}} {{model}} low"),
                       _q(f"gavel_judge_online_pass_rate_high{{{crit},{M}}}",
                          "{{criterion}} {{model}} high")]),
        Panel(title="Online judging lag (capture to verdict)", unit="s",
              description="Median and max over the last hour's picked records.",
              queries=[_q("max by (stat) (gavel_judge_online_lag_seconds)", "{{stat}}")]),
        Panel(title="Users' feedback: positive share (latest judged day)",
              unit="percentunit",
              description="POST /v1/feedback: the positive share per model and name, and "
                          "the share of requests with feedback.",
              queries=[_q(f"gavel_feedback_positive_share{{{M}}}", "{{model}} {{feedback}}"),
                       _q(f"gavel_feedback_rate{{{M}}}", "{{model}} {{feedback}} rate")]),
    ])  # fmt: skip


def _quality() -> DashboardSpec:
    crit = 'criterion=~"$criterion"'
    rows = [
        Row(title="Pass rates (latest judged day)", panels=[
            Panel(title="Pass rate with 95% interval", unit="percentunit",
                  description="The daily judge's pass rate per criterion and model, with its "
                              "Wilson interval.",
                  queries=[_q(f"gavel_judge_pass_rate{{{crit},{M}}}", "{{criterion}} {{model}}"),
                           _q(f"gavel_judge_pass_rate_low{{{crit},{M}}}",
                              "{{criterion}} {{model}} low"),
                           _q(f"gavel_judge_pass_rate_high{{{crit},{M}}}",
                              "{{criterion}} {{model}} high")]),
            Panel(title="Drop flagged", kind="stat", unit="short",
                  description="1 where the day's pass rate is significantly below the "
                              "trailing days'.",
                  queries=[_q(f"max by (criterion, model) (gavel_judge_drop_flag{{{crit},{M}}})",
                              "{{criterion}} {{model}}")]),
            Panel(title="Judge trusted (agrees with people)", kind="stat", unit="short",
                  description="1 when the criterion's judge agrees with human labels "
                              "(kappa and label count); pass rates of untrusted judges are "
                              "indicative only.",
                  queries=[_q(f"max by (criterion) (gavel_judge_trusted{{{crit}}})",
                              "{{criterion}}")]),
            Panel(title="Judge kappa vs human labels", unit="short",
                  description="Cohen's kappa of the judge against people, per criterion "
                              "(missing until labels exist).",
                  queries=[_q(f"max by (criterion) (gavel_judge_kappa{{{crit}}})",
                              "{{criterion}}"),
                           _q(f"max by (criterion) (gavel_judge_calibration_labels{{{crit}}})",
                              "{{criterion}} labels")]),
        ]),
        _within_the_hour(crit),
        Row(title="The judging job", panels=[
            Panel(title="Judged items and errors", unit="short",
                  description="Items judged (pass + fail) and judge errors on the latest day.",
                  queries=[_q(f"sum by (criterion) (gavel_judge_sample_size{{{crit}}})",
                              "{{criterion}} judged"),
                           _q(f"sum by (criterion) (gavel_judge_errors{{{crit}}})",
                              "{{criterion}} errors")]),
            Panel(title="Judge cost", unit="currencyUSD",
                  description="Judge cost of the latest judged day (verdict store), and judge "
                              "calls priced by the gateway over 24 hours.",
                  queries=[_q("max(gavel_judge_cost_usd)", "latest day"),
                           _q('sum(increase(gavel_cost_usd_total{source="judge"}[1d]))',
                              "gateway, 24 h")]),
            Panel(title="Hours since the judge job last succeeded", kind="stat", unit="h",
                  description="Alert GavelJudgeJobMissing fires past 26 hours.",
                  queries=[_q("(time() - max(gavel_judge_last_success_timestamp_seconds)) / 3600",
                              "hours")]),
        ]),
        Row(title="Model swap", panels=[
            Panel(title="Swap decision", kind="stat", unit="short",
                  description="The last `gavel swap report`: 1 on the decision taken "
                              "(promote, rollback or continue). Alert GavelSwapRollback.",
                  queries=[_q("max by (production, candidate, decision) (gavel_swap_decision)",
                              "{{candidate}} {{decision}}")]),
            Panel(title="Candidate win rate with its confidence sequence", unit="percentunit",
                  description="The candidate's pairwise win rate on shadow pairs (ties half) "
                              "and its confidence sequence, valid however often it is read.",
                  queries=[_q("max by (candidate, bound) (gavel_swap_win_rate)",
                              "{{candidate}} {{bound}}")]),
            Panel(title="Swap checks: pass rate per arm", unit="percentunit",
                  description="Each check of the last swap report (assertions and judge "
                              "criteria) on shadow pairs and canary arms, per arm.",
                  queries=[_q("max by (check, on, arm) (gavel_swap_pass_rate)",
                              "{{check}} {{on}} {{arm}}")]),
            Panel(title="Swap judges trusted (agree with people)", kind="stat", unit="short",
                  description="1 when a judge of the swap report (the pairwise one and the "
                              "pass/fail criteria) is calibrated against human labels; an "
                              "untrusted judge's figures do not decide the swap.",
                  queries=[_q("max by (criterion) (gavel_swap_judge_trusted)",
                              "{{criterion}}")]),
            Panel(title="Shadow and canary shares", unit="percentunit",
                  description="The swap's shares now: requests shadowed to the candidate, "
                              "and requests it answers (1 once promoted).",
                  queries=[_q("max by (candidate, kind) (gavel_swap_share)",
                              "{{candidate}} {{kind}}")]),
            Panel(title="Shadow cost and drops", unit="short",
                  description="USD spent on shadow requests, and shadows dropped because "
                              "the replica's shadow slots were taken, over 24 hours.",
                  queries=[_q('sum(increase(gavel_cost_usd_total{source="shadow"}[1d]))',
                              "shadow USD, 24 h"),
                           _q("sum by (model) (increase(gavel_shadow_dropped_requests_total"
                              "[1d]))", "{{model}} dropped, 24 h")]),
        ]),
    ]  # fmt: skip
    return DashboardSpec(uid="gavel-quality", title="Gavel / Quality",
                         description="Daily judge pass rates, drops, judge trust, job health.",
                         rows=rows)  # fmt: skip


def dashboard_specs() -> list[DashboardSpec]:
    """Every Gavel dashboard."""
    return [_serving(), _cost(), _quality()]


VARIABLE_DEFAULTS = {"$model": ".*", "$criterion": ".*", RI: "1m"}


def expand(expr: str, *, rate_interval: str = "1m") -> str:
    """``expr`` as plain PromQL: Grafana's variables replaced (``$model`` by all models)."""
    out = expr.replace(RI, rate_interval)
    for var, value in VARIABLE_DEFAULTS.items():
        out = out.replace(var, value)
    return out
