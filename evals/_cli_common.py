"""What the ``gavel eval`` handlers share: the configs, the suite, the key, the endpoint."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from serving import EXIT_USAGE, CliError

if TYPE_CHECKING:
    from evals._generate import Endpoint
    from evals._suite import LoadedSuite, Params
    from judges import JudgingConfig
    from serving import StackConfig


def configs(args: argparse.Namespace) -> tuple[StackConfig, JudgingConfig]:
    """The stack and judging configs the arguments name."""
    from judges import load_judging
    from serving import load_config

    return load_config(args.config), load_judging(args.judging)


def load(args: argparse.Namespace, judging: JudgingConfig) -> LoadedSuite:
    """The suite ``args.suite``, its criteria from the judging config."""
    from evals._suite import load_suite

    loaded = load_suite(args.suite, criteria_dir=judging.criteria_dir)
    limit = getattr(args, "limit", None)
    return loaded.first(limit) if limit else loaded


def need_key(args: argparse.Namespace) -> str:
    """The API key, or a one-line error saying how to get one."""
    if not args.api_key:
        raise CliError(
            "no API key: pass --api-key or set GAVEL_API_KEY to a key with the 'infer' and "
            "'judge' scopes (`gavel keys create evals --scopes infer,judge`)",
            EXIT_USAGE,
        )
    return str(args.api_key)


def merged_params(base: Params, over: dict[str, Any] | None) -> Params:
    """``base`` with ``over`` applied; bad values are a one-line error."""
    from pydantic import ValidationError

    from evals._suite import Params

    try:
        return Params.model_validate({**base.model_dump(), **(over or {})})
    except ValidationError as exc:
        e = exc.errors()[0]
        raise CliError(f"params: {'.'.join(map(str, e['loc']))}: {e['msg']}", EXIT_USAGE) from None


def endpoint(
    args: argparse.Namespace,
    stack: StackConfig,
    loaded: LoadedSuite,
    model: str | None,
    params: dict[str, Any] | None,
) -> Endpoint:
    """The endpoint a suite is run against, checked to answer like OpenAI."""
    from evals._generate import Endpoint, check_endpoint

    t = loaded.suite.target
    if model is None:
        if t.model is not None:
            model = t.model
        else:
            try:
                model = stack.model(t.role or "app").model_id
            except KeyError:
                raise CliError(
                    f"{args.config}: no model with role {t.role!r}", EXIT_USAGE
                ) from None
    ep = Endpoint(
        base_url=args.base_url or stack.http.base_url,
        api_key=need_key(args),
        model=model,
        params=merged_params(t.params, params),
        system=t.system,
    )
    check_endpoint(ep)
    return ep
