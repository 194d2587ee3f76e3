"""``%load_ext nbregistry``: magics that parse a line, make one registry call and display.

Loading stays cheap: the registry (pyarrow, deltalake), widgets and altair are imported on
the first magic that needs them, not here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from IPython.core import magic as _magic
from IPython.core import magic_arguments as _args
from IPython.core.error import UsageError
from IPython.core.magic import Magics, magics_class
from IPython.utils import process as _process
from traitlets import Unicode, observe
from traitlets.config.configurable import Configurable

from ..domain.errors import NbRegistryError
from . import parsing
from .display import HistoryTable, VersionsTable, describe_error

if TYPE_CHECKING:
    from ..registry import Registry, RegistryView

F = TypeVar("F", bound=Callable[..., Any])
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
# IPython's helpers are unannotated in older releases and typed differently in newer ones;
# these aliases give mypy --strict one stable signature (hence the version-proof ignores).
argument: Callable[..., Decorator] = _args.argument
magic_arguments: Callable[..., Decorator] = _args.magic_arguments
arg_split: Callable[[str], list[str]] = _process.arg_split  # type: ignore[attr-defined,unused-ignore]
line_magic: Callable[[str], Decorator] = _magic.line_magic  # type: ignore[assignment,unused-ignore]
cell_magic: Callable[[str], Decorator] = _magic.cell_magic  # type: ignore[assignment,unused-ignore]
needs_local_scope: Decorator = _magic.needs_local_scope


def friendly(fn: F) -> F:
    """``--help`` prints the generated help; registry errors become a one-line UsageError
    (IPython shows those without a traceback)."""
    parser = fn.parser  # type: ignore[attr-defined]
    parser.add_argument("-h", "--help", action="store_true", help="show this help")
    fn.__doc__ = parser.format_help()  # what `%magic?` shows, now listing --help too

    @functools.wraps(fn)
    def wrapper(self: RegistryMagics, line: str, *args: Any, **kwargs: Any) -> Any:
        if {"-h", "--help"} & set(arg_split(line)):
            print(parser.format_help())
            return None
        try:
            return fn(self, line, *args, **kwargs)
        except NbRegistryError as exc:
            raise UsageError(describe_error(exc)) from None

    return wrapper  # type: ignore[return-value]


def parse_argstring(magic: Callable[..., Any], line: str) -> Any:
    """Like IPython's, but ``--comment "looks good"`` yields ``looks good``: IPython splits
    non-POSIX (so Windows paths keep their backslashes) and leaves the quotes on."""
    tokens = [t[1:-1] if len(t) > 1 and t[0] == t[-1] and t[0] in "'\"" else t
              for t in arg_split(line)]
    return magic.parser.parse_args(tokens)  # type: ignore[attr-defined]


def _version(text: str) -> int | str:
    return int(text) if text.isdigit() else text


@magics_class
class RegistryMagics(Magics, Configurable):
    """Registry magics; ``%config RegistryMagics.uri = "s3://…"`` sets the default registry."""

    uri = Unicode("", help="Registry URI; empty means $NBREGISTRY_URI, else ./.nbregistry"
                  ).tag(config=True)
    user = Unicode("", help="Acting user; empty means $NBREGISTRY_USER, $JUPYTERHUB_USER or "
                   "the OS user").tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)  # type: ignore[no-untyped-call,unused-ignore]
        # Magics.__init__ already registers with shell.configurables in IPython 8; older or
        # other shells may not, and %config only reaches instances listed there.
        if shell is not None and self not in getattr(shell, "configurables", [self]):
            shell.configurables.append(self)
        self._live: Registry | None = None
        self._view: RegistryView | None = None
        self._create = False  # set by %registry --create, for the next open only

    @observe("uri", "user")
    def _forget(self, change: Any) -> None:
        self._live = self._view = None
        self._create = False

    # -- plumbing ------------------------------------------------------------------------
    def live(self) -> Registry:
        """The registry writes go to (opened on first use)."""
        if self._live is None:
            from ..domain.errors import NotFoundError
            from ..registry import open_registry

            try:  # a mistyped path never makes a registry: %registry PATH --create does
                self._live = open_registry(self.uri or None, self.user or None,
                                           create=bool(self._create))
            except NotFoundError as missing:
                raise UsageError(f"{missing}. In a notebook: %registry PATH --create makes a "
                                 "new one") from None
        return self._live

    def current(self) -> RegistryView:
        """What reads see: the ``--as-of`` view when one is active, else the live registry."""
        return self._view if self._view is not None else self.live()

    def writer(self) -> Registry:
        if self._view is not None:
            raise UsageError("the registry is a read-only view of the past (%registry --as-of);"
                             " run %registry without --as-of to make changes")
        return self.live()

    def var(self, name: str, local_ns: dict[str, Any] | None = None) -> Any:
        for namespace in (local_ns or {}, getattr(self.shell, "user_ns", {})):
            if name in namespace:
                return namespace[name]
        raise UsageError(f"no variable named {name!r} in the notebook; define it first "
                         f"(e.g. {name} = ...) or check the spelling")

    # -- magics --------------------------------------------------------------------------
    @line_magic("registry")
    @friendly
    @magic_arguments("registry")
    @argument("uri", nargs="?", help="registry folder or URI (s3://…); default: "
              "RegistryMagics.uri, $NBREGISTRY_URI, ./.nbregistry")
    @argument("--as-of", dest="as_of", help="read-only view at an ISO time, e.g. 2026-03-01")
    @argument("--user", help="act as this user (default $NBREGISTRY_USER)")
    @argument("--create", action="store_true",
              help="make a new registry there if there is none (never by default: a typo "
                   "must not make a registry)")
    def registry_magic(self, line: str) -> RegistryView:
        """Open (or show) the registry the other magics use."""
        args = parse_argstring(self.registry_magic, line)
        with self.hold_trait_notifications():
            self.uri = args.uri or self.uri
            self.user = args.user or self.user
        self._view = None
        if args.create:
            self._live, self._create = None, True
        if args.as_of:
            self._view = self.live().as_of(args.as_of)
        return self.current()

    @needs_local_scope
    @line_magic("register")
    @friendly
    @magic_arguments()
    @argument("var", help="variable holding the fitted model")
    @argument("--name", required=True, help="model name, e.g. credit_risk")
    @argument("--metrics", nargs="+", default=[], help="a dict variable and/or k=v pairs")
    @argument("--params", nargs="+", default=[], help="a dict variable and/or k=v pairs")
    @argument("--tag", nargs="+", default=[], help="k=v pairs")
    @argument("--data", help="training data: Delta table URI (its version is pinned) or file")
    @argument("--reference", help="variable with the training features (monitoring baseline)")
    @argument("--target", help="variable with the training target (with --reference)")
    @argument("--description", nargs="+", default=[], help="free text")
    def register(self, line: str, local_ns: dict[str, Any] | None = None) -> Any:
        """Register the model in VAR as the next version of --name, with its lineage."""
        args = parse_argstring(self.register, line)
        lookup = functools.partial(self.var, local_ns=local_ns)
        optional = {k: lookup(v) if v else None for k, v in (("reference_data", args.reference),
                                                             ("reference_target", args.target))}
        return self.writer().register(
            lookup(args.var), args.name, description=" ".join(args.description),
            metrics=parsing.pairs(args.metrics, what="metrics", convert=parsing.number,
                                  lookup=lookup),
            params=parsing.pairs(args.params, what="params", lookup=lookup),
            tags=parsing.pairs(args.tag, what="tags", convert=str),
            training_data=args.data, **optional)

    @line_magic("models")
    @friendly
    @magic_arguments()
    @argument("name", nargs="?", help="one model (default: all)")
    @argument("--where", nargs="+", default=[], help='metric bounds, e.g. "auc>=0.8, ks<=0.3"')
    @argument("--stage", help="only versions in this stage")
    @argument("--alias", help="only the version holding this alias")
    @argument("--tag", nargs="+", default=[], help="k=v pairs the versions must carry")
    @argument("--sort", help="order by this metric, best (highest) first")
    @argument("--asc", action="store_true", help="with --sort: lowest first")
    @argument("--limit", type=int, help="at most this many versions")
    @argument("--browse", action="store_true", help="open the interactive browser instead")
    def models(self, line: str) -> Any:
        """List model versions (a table), or --browse them in a panel."""
        args = parse_argstring(self.models, line)
        low, high = parsing.where(args.where)
        if args.browse:
            from .panels import RegistryBrowser

            return RegistryBrowser(self.current(), name=args.name, where=", ".join(args.where))
        table = self.current().search(
            args.name, tags=parsing.pairs(args.tag, what="tags", convert=str) or None,
            stage=args.stage, alias=args.alias, min_metrics=low or None,
            max_metrics=high or None, metric=args.sort, ascending=args.asc, limit=args.limit)
        return VersionsTable(table)

    @line_magic("compare")
    @friendly
    @magic_arguments()
    @argument("name", help="model name")
    @argument("versions", nargs="+", help="two or more versions (numbers or aliases)")
    @argument("--panel", action="store_true", help="open the interactive comparison panel")
    @argument("--no-chart", dest="chart", action="store_false", help="skip the metrics chart")
    def compare(self, line: str) -> Any:
        """Compare versions side by side: metrics, params, features, card, lineage."""
        args = parse_argstring(self.compare, line)
        if len(args.versions) < 2:
            raise UsageError("name at least two versions to compare, e.g. %compare m 1 2")
        reg = self.current()
        versions = [reg.get(args.name, v) if isinstance(v, int) else reg.get(f"{args.name}@{v}")
                    for v in map(_version, args.versions)]
        if args.panel:
            from .panels import ComparisonPanel

            return ComparisonPanel(reg, args.name, [mv.version for mv in versions],
                                   chart=args.chart)
        from .comparison import Comparison

        return Comparison(versions, chart=args.chart, importance=_importance(reg, versions))

    @line_magic("promote")
    @friendly
    @magic_arguments()
    @argument("name", help="model name")
    @argument("version", type=int, help="version number")
    @argument("--to", help="target stage, e.g. staging or production")
    @argument("--comment", nargs="+", default=[], help="why this version should be promoted")
    @argument("--emergency", action="store_true", help="promote now, ratify approvals later")
    @argument("--check", action="store_true", help="only evaluate the gates for --to")
    @argument("--panel", action="store_true", help="open the promotion/approval panel")
    def promote(self, line: str) -> Any:
        """Request promotion of a version to a stage (or --check its gates, or open --panel)."""
        args = parse_argstring(self.promote, line)
        if args.panel:
            from .panels import PromotionPanel

            return PromotionPanel(self.writer(), args.name, args.version, stage=args.to,
                                  auto_refresh=5.0)
        if not args.to:
            raise UsageError("--to STAGE is required, e.g. %promote m 3 --to production")
        if args.check:
            from .display import Gates

            return Gates(self.current().check_gates(args.name, args.version, args.to))
        return self.writer().request_promotion(args.name, args.version, args.to,
                                               comment=" ".join(args.comment),
                                               emergency=args.emergency)

    @needs_local_scope
    @line_magic("approve")
    @friendly
    @magic_arguments()
    @argument("name", help="model name")
    @argument("version", type=int, help="version number")
    @argument("--comment", nargs="+", default=[], help="what you checked")
    @argument("--to", help="the request's stage, when a version has several open")
    @argument("--key", help="variable holding your Ed25519 private key (signed approvals)")
    def approve(self, line: str, local_ns: dict[str, Any] | None = None) -> Any:
        """Approve the open promotion request of a version (as the acting user)."""
        args = parse_argstring(self.approve, line)
        key = self.var(args.key, local_ns) if args.key else None
        return self.writer().approve(args.name, args.version, comment=" ".join(args.comment),
                                     to=args.to, signing_key=key)

    @line_magic("reject")
    @friendly
    @magic_arguments()
    @argument("name", help="model name")
    @argument("version", type=int, help="version number")
    @argument("--comment", nargs="+", required=True, help="why it is rejected (required)")
    @argument("--to", help="the request's stage, when a version has several open")
    def reject(self, line: str) -> Any:
        """Reject the open promotion request of a version; say why."""
        args = parse_argstring(self.reject, line)
        return self.writer().reject(args.name, args.version, comment=" ".join(args.comment),
                                    to=args.to)

    @line_magic("rollback")
    @friendly
    @magic_arguments()
    @argument("name", help="model name")
    @argument("--stage", required=True, help="stage to roll back, e.g. production")
    @argument("--reason", nargs="+", default=[], help="why (kept in the audit trail)")
    def rollback(self, line: str) -> Any:
        """Return a stage to the version that held it before the current one."""
        args = parse_argstring(self.rollback, line)
        return self.writer().rollback(args.name, stage=args.stage, reason=" ".join(args.reason))

    @cell_magic("modelcard")
    @friendly
    @magic_arguments()
    @argument("name", help="model name")
    @argument("version", type=int, help="version number")
    def modelcard(self, line: str, cell: str) -> Any:
        """Write the model card of a version in markdown: each '## Heading' becomes a field
        ('## Intended use' → intended_use); text before the first heading is the summary."""
        args = parse_argstring(self.modelcard, line)
        return self.writer().set_card(args.name, args.version, parsing.model_card(cell))

    @line_magic("monitor")
    @friendly
    @magic_arguments()
    @argument("name", help="model name")
    @argument("--window", help="the period to look at, e.g. 7d, 12h (default: the policy's)")
    @argument("--version", type=int, help="the version (default: production's, else latest)")
    @argument("--panel", action="store_true", help="the live monitoring dashboard")
    @argument("--check", action="store_true",
              help="run the policy's check: record metrics, alerts and actions")
    def monitor(self, line: str) -> Any:
        """Monitoring of one model: drift per feature (and over windows), performance over
        time, fairness, open alerts."""
        args = parse_argstring(self.monitor, line)
        if args.panel:
            from .panels import MonitoringDashboard

            return MonitoringDashboard(self.writer(), args.name, window=args.window)
        mon = self.writer().monitor(args.name)
        if args.check:
            return mon.check()
        from .monitoring import gather

        # a static view: a progress bar would stay in the saved notebook, stuck at 0%
        return gather(mon, window=args.window, version=args.version, progress=False)

    @line_magic("report")
    @friendly
    @magic_arguments()
    @argument("template", help="validation, monitoring, fair_lending, sox_change (or a path)")
    @argument("name", help="model name")
    @argument("version", type=int, help="version number")
    @argument("-p", dest="params", nargs=2, action="append", default=[],
              metavar=("KEY", "VALUE"), help="a template parameter (repeatable)")
    @argument("--output-dir", default=None, help="folder for the outputs "
              "(default: reports/<template>/<model>-v<version>)")
    @argument("--no-pdf", action="store_true", help="skip the PDF")
    def report(self, line: str) -> Any:
        """Run a compliance report template for a version (papermill); the run is recorded."""
        args = parse_argstring(self.report, line)
        from ..reports import run_report
        from ..reports.params import validate
        from ..reports.templates import template_path

        raw = {"model": args.name, "version": str(args.version), **dict(args.params)}
        values = validate(template_path(args.template), raw, coerce=True)
        folder = args.output_dir or f"reports/{args.template}/{args.name}-v{args.version}"
        return run_report(args.template, output_dir=folder, uri=self.uri or None,
                          user=self.user or None, pdf=False if args.no_pdf else None,
                          **{k: values[k] for k in raw})

    @line_magic("audit")
    @friendly
    @magic_arguments()
    @argument("name", nargs="?", help="one model (default: the whole registry)")
    @argument("--version", type=int, help="only this version's events")
    @argument("--verify", action="store_true", help="also check chain, gaps and artifacts")
    @argument("--limit", type=int, default=200, help="show at most this many recent events")
    def audit(self, line: str) -> HistoryTable:
        """The audit trail (events, oldest first), and with --verify its integrity check."""
        args = parse_argstring(self.audit, line)
        history = self.current().history(args.name, version=args.version)
        report = self.live().verify() if args.verify else None
        return HistoryTable(history, report, max_rows=args.limit)


def _importance(reg: Any, versions: list[Any]) -> list[dict[str, float]]:
    """Each version's frozen feature importance, where monitoring can say (not on a view of
    the past, nor without the monitoring extra or reference data)."""
    if not hasattr(reg, "monitor"):
        return []
    try:
        mon = reg.monitor(versions[0].name)
        return [mon.importance(mv.version) if mv.reference else {} for mv in versions]
    except NbRegistryError:
        return []


def load_ipython_extension(shell: Any) -> None:
    shell.register_magics(RegistryMagics(shell))
    html = shell.display_formatter.formatters["text/html"]
    # Registry objects have no HTML repr of their own (the registry layer stays display-free).
    html.for_type_by_name("nbregistry.registry.view", "RegistryView", _registry_html)
    html.for_type_by_name("nbregistry.registry.registry", "Registry", _registry_html)


def _registry_html(reg: RegistryView) -> str:
    from .display import registry_html

    return registry_html(reg)


__all__ = ["RegistryMagics", "load_ipython_extension"]
