"""Configuration: one YAML file (`NUDGE_CONFIG` or `--config`), validated up front into `Settings`.

Every problem is reported at once, each naming the file, line, key path and what was expected.
Secrets come from the environment: `${NAME}` (required) or `${NAME:-default}`. A provider block with
`enabled: false` is checked for shape but its `${...}` references are not required.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from connector.domain.policy import PolicyError, PolicySet
from connector.domain.policy_parsing import policy_from_dict
from connector.errors import ConfigError, ConfigIssue
from connector.ports import ProviderSettings

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


# -- settings objects ---------------------------------------------------------------------------
@dataclass(frozen=True)
class DatabaseSettings:
    """The `database:` section: SQLAlchemy URL, SQL echo and connection pool size."""

    url: str
    echo: bool = False
    pool_size: int = 5


@dataclass(frozen=True)
class VaultSettings:
    """The `vault:` section: the token-sealing keys by id and the one new tokens are sealed with."""

    active_key: str
    keys: Mapping[str, str] = field(repr=False)


@dataclass(frozen=True)
class WebSettings:
    """The `web:` section: session secret, public base URL, bind address and cookie security."""

    secret_key: str = field(repr=False)
    base_url: str = "http://127.0.0.1:5000"
    host: str = "127.0.0.1"
    port: int = 5000
    session_cookie_secure: bool = True
    ratelimit_storage_uri: str = "memory://"  # sign-in throttle counts; redis://… to share them across processes
    login_limit_per_account: str = "5 per minute; 20 per hour"  # failed sign-ins per account
    login_limit_per_address: str = "20 per minute; 100 per hour"  # failed sign-ins per client address
    invitation_valid_days: int = 7  # an invitation link works this long (resending starts a new period)
    # The customer page (issue 17, docs/customer-page.md): each reminder's link `/c/<token>` works this long, and
    # requests to the page are limited per link and per address (`web.ratelimit_storage_uri` keeps the counts).
    customer_link_days: int = 60
    customer_page_limit: str = "30 per minute; 300 per hour"
    # /privacy and /terms: a URL to redirect to (the business's own page), else a Markdown/HTML file shown in the
    # site frame, else a placeholder saying how to replace it.
    privacy_url: str = ""
    privacy_file: str = ""
    terms_url: str = ""
    terms_file: str = ""


@dataclass(frozen=True)
class ApiSettings:
    """The `api:` section: limits of the JSON API under /api/v1 (storage: `web.ratelimit_storage_uri`)."""

    rate_limit: str = "600 per minute"  # per API token, or per user for calls made from a signed-in session


@dataclass(frozen=True)
class SchedulerSettings:
    """The `scheduler:` section: tick, sync interval, leases and backoff of the worker."""

    tick_seconds: int = 30
    sync_interval_minutes: int = 360  # a safety net: webhooks make a connection due at once
    jitter_seconds: int = 120
    lease_seconds: int = 600
    max_connections_per_tick: int = 20
    full_reconcile_hours: int = 24
    max_backoff_minutes: int = 360
    concurrency: int = 8  # connections processed at once by one worker (PostgreSQL; SQLite always uses 1)
    shutdown_grace_seconds: int = 30  # on SIGTERM: how long the action in hand may take before the worker exits
    action_max_attempts: int = 5  # a transient failure (provider 5xx, mail refused before DATA) is retried ...
    action_retry_base_seconds: int = 120  # ... after this wait, doubling each attempt ...
    action_retry_max_seconds: int = 3600  # ... but never waiting longer than this
    webhook_retention_days: int = 30  # accepted webhook deliveries (kept for deduplication) are pruned after this


@dataclass(frozen=True)
class MailSettings:
    """The `mail:` section: maildir or SMTP delivery and the sender's identity."""

    backend: str = "maildir"
    outbox_path: str = ""
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 587
    smtp_security: str = "starttls"
    smtp_username: str = ""
    smtp_password: str = field(default="", repr=False)
    from_name: str = "Accounts receivable"
    from_address: str = "billing@example.com"
    reply_to: str = ""
    timeout_seconds: int = 30
    # Replies (issue 17, docs/replies.md): `replies@example.com` gives each thread `replies+<token>@example.com`.
    reply_address: str = ""
    reply_signing_key: str = field(default="", repr=False)  # "" = derived from web.secret_key
    reply_pause_days: int = 5  # a human reply pauses automatic reminders to that customer this many days
    inbound_postmark_basic_auth: str = field(default="", repr=False)  # "user:password" on the webhook URL
    inbound_mailgun_signing_key: str = field(default="", repr=False)
    inbound_max_bytes: int = 10 * 2**20  # a larger inbound message (webhook body, IMAP message) is refused
    imap_host: str = ""  # "" = no IMAP polling
    imap_port: int = 993
    imap_security: str = "ssl"
    imap_username: str = ""
    imap_password: str = field(default="", repr=False)
    imap_folder: str = "INBOX"
    imap_poll_seconds: int = 60


@dataclass(frozen=True)
class MetricsSettings:
    """The `metrics:` section: the bearer token GET /metrics requires ("" = the endpoint answers 404)."""

    token: str = field(default="", repr=False)


@dataclass(frozen=True)
class StatutorySettings:
    """Reference rates for the statutory late-payment presets (annual percentages, as Decimals)."""

    uk_base_rate: Decimal = Decimal("4.00")
    eu_reference_rate: Decimal = Decimal("2.15")


@dataclass(frozen=True)
class Settings:
    """Everything Nudge reads from its config file and environment."""

    source: str
    instance_path: str
    database: DatabaseSettings
    vault: VaultSettings
    web: WebSettings
    scheduler: SchedulerSettings
    mail: MailSettings
    statutory: StatutorySettings
    providers: Mapping[str, ProviderSettings]
    mode: str = "production"  # production: provider URLs only on the providers' https hosts; development: any
    log_level: str = "INFO"
    cadences: Mapping[str, Any] = field(default_factory=dict)
    policies: Mapping[str, Any] = field(default_factory=dict)
    rules: PolicySet = field(default_factory=PolicySet)
    warnings: tuple[str, ...] = ()
    api: ApiSettings = field(default_factory=ApiSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)


# -- YAML with line numbers --------------------------------------------------------------------
@dataclass(frozen=True)
class _Node:
    value: Any  # dict[str, _Node] | list[_Node] | scalar
    line: int
    column: int | None = None  # 1-based; for a mapping's child, where its key starts


@dataclass(frozen=True)
class _Duplicate:
    path: str
    key: str
    first_line: int
    line: int
    column: int


class _Loader(yaml.SafeLoader):
    pass


def _compose(text: str, source: str, duplicates: list[_Duplicate]) -> _Node | None:
    """The YAML as `_Node`s with line and column; keys given twice in one mapping go to `duplicates`."""
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        issue = ConfigIssue(source, line, "", f"not valid YAML: {getattr(exc, 'problem', exc)}", column)
        raise ConfigError([issue]) from None
    return _convert(root, "", duplicates) if root is not None else None


def _convert(node: yaml.Node, path: str, duplicates: list[_Duplicate]) -> _Node:
    line, column = node.start_mark.line + 1, node.start_mark.column + 1
    if isinstance(node, yaml.MappingNode):
        mapping: dict[str, _Node] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            key_line, key_column = key_node.start_mark.line + 1, key_node.start_mark.column + 1
            if key in mapping:  # YAML would keep the last one silently
                duplicates.append(_Duplicate(path, key, mapping[key].line, key_line, key_column))
                continue
            mapping[key] = _Node(_convert(value_node, _join(path, key), duplicates).value, key_line, key_column)
        return _Node(mapping, line, column)
    if isinstance(node, yaml.SequenceNode):
        return _Node([_convert(item, f"{path}[{n}]", duplicates) for n, item in enumerate(node.value)], line, column)
    if node.tag == "tag:yaml.org,2002:str":
        return _Node(node.value, line, column)
    return _Node(yaml.SafeLoader("").construct_object(node), line, column)


def _plain(node: _Node) -> Any:
    if isinstance(node.value, dict):
        return {key: _plain(child) for key, child in node.value.items()}
    if isinstance(node.value, list):
        return [_plain(child) for child in node.value]
    return node.value


# -- validation ---------------------------------------------------------------------------------
class _Checker:
    def __init__(self, source: str, environ: Mapping[str, str]) -> None:
        self.source = source
        self.environ = environ
        self.issues: list[ConfigIssue] = []
        self.warnings: list[str] = []

    def issue(self, line: int | None, path: str, message: str, column: int | None = None) -> None:
        self.issues.append(ConfigIssue(self.source, line, path, message, column))

    def issue_at(self, node: _Node | None, path: str, message: str) -> None:
        """An issue at `node`'s line and column (the file alone when there is no node)."""
        self.issue(node.line if node else None, path, message, node.column if node else None)

    def resolve(self, text: str, line: int, path: str, *, required: bool = True, column: int | None = None) -> str:
        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in self.environ:
                return self.environ[name]
            if default is not None:
                return default
            if required:
                self.issue(line, path, _unset(name), column)
            return ""

        return _ENV_REF.sub(substitute, text)

    def mapping(self, node: _Node | None, path: str, known: list[str]) -> dict[str, _Node]:
        if node is None:
            return {}
        if not isinstance(node.value, dict):
            self.issue_at(node, path, f"expected a mapping of keys ({', '.join(known)}), got {_kind(node.value)}")
            return {}
        for key, child in node.value.items():
            if _join(path, key) in REMOVED_KEYS:
                self.issue_at(child, _join(path, key), REMOVED_KEYS[_join(path, key)])
            elif key not in known:
                hint = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
                suggestion = f"; did you mean {hint[0]!r}?" if hint else f"; known keys: {', '.join(known)}"
                self.issue_at(child, _join(path, key), f"unknown key {key!r}{suggestion}")
        return node.value

    def scalar(
        self,
        section: dict[str, _Node],
        path: str,
        key: str,
        kind: type,
        default: Any,
        *,
        choices: tuple[str, ...] = (),
        check: Callable[[Any], str | None] | None = None,
        required_env: bool = True,
    ) -> Any:
        node = section.get(key)
        where = _join(path, key)
        if node is None or node.value is None:
            return default
        value = node.value
        if isinstance(value, str):
            value = self.resolve(value, node.line, where, required=required_env, column=node.column)
        converted = _coerce(value, kind)
        if converted is _INVALID:
            self.issue_at(node, where, f"expected {_kind_name(kind)}, got {_kind(node.value)} {node.value!r}")
            return default
        if choices and converted not in choices:
            self.issue_at(node, where, f"expected one of {', '.join(choices)}, got {converted!r}")
            return default
        if check is not None:
            problem = check(converted)
            if problem:
                self.issue_at(node, where, problem)
                return default
        return converted


_INVALID = object()


def _unset(name: str) -> str:
    """A required variable is missing: most often the `.env` that `nudge init` wrote is not where Nudge runs."""
    return (
        f"environment variable {name} is not set (the value is ${{{name}}}): set it, or run Nudge where the `.env` "
        f"holding it is (the working directory or the config file's folder); is that `.env` missing?"
    )


def _coerce_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false", "yes", "no", "1", "0", "on", "off"}:
        return value.lower() in {"true", "yes", "1", "on"}
    return _INVALID


def _coerce_int(value: Any) -> Any:
    if isinstance(value, bool):
        return _INVALID
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    return _INVALID


def _coerce_decimal(value: Any) -> Any:
    if isinstance(value, bool):
        return _INVALID
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        return _INVALID


def _coerce_str(value: Any) -> Any:
    if isinstance(value, dict | list):
        return _INVALID
    return "" if value is None else str(value)


_COERCERS: dict[type, Callable[[Any], Any]] = {
    bool: _coerce_bool,
    int: _coerce_int,
    Decimal: _coerce_decimal,
    str: _coerce_str,
}


def _coerce(value: Any, kind: type) -> Any:
    """`value` as `kind`, or `_INVALID`; kinds without a coercer pass through unchanged."""
    coercer = _COERCERS.get(kind)
    return value if coercer is None else coercer(value)


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", bool: "a boolean", int: "a number", float: "a number"}.get(
        type(value), "text"
    )


def _kind_name(kind: type) -> str:
    return {bool: "true or false", int: "a whole number", Decimal: "a decimal number", str: "text"}[kind]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _positive(value: int) -> str | None:
    return None if value > 0 else "expected a number greater than 0"


def _url(value: str) -> str | None:
    return None if re.match(r"^https?://[^\s/]+", value) else f"expected an http(s) URL, got {value!r}"


TOP_KEYS = [
    "mode",
    "instance_path",
    "database",
    "vault",
    "web",
    "api",
    "scheduler",
    "mail",
    "statutory",
    "metrics",
    "providers",
    "log_level",
    "cadences",
    "policies",
]
# Keys Nudge once read and no longer does: refused with the reason instead of "unknown key".
REMOVED_KEYS = {
    "default_time_zone": (
        "no longer a setting: it was never used (a cadence's time_zone, else the connection's ledger zone, "
        "decides); remove it"
    ),
}
MODES = ("production", "development")
# Provider hosts accepted in production mode (docs/provider-api-facts.md §1 and §2): https, and the
# provider's own domain. Development mode (the demo, the tests) may point a provider at a local emulator.
PUBLISHED_DOMAINS = {"quickbooks": ("intuit.com",), "xero": ("xero.com",)}
PROVIDER_URL_KEYS = ("api_base", "identity_base", "environment")
PROVIDER_KEYS = [
    "enabled",
    "client_id",
    "client_secret",
    "redirect_uri",
    "webhook_key",
    "environment",
    "api_base",
    "identity_base",
    "scopes",
    "options",
]


def parse_settings(
    text: str,
    *,
    source: str = "<config>",
    environ: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
    provider_names: list[str] | None = None,
) -> Settings:
    """Validate YAML `text` into Settings; raises ConfigError listing every issue found."""
    check = _Checker(source, os.environ if environ is None else environ)
    duplicates: list[_Duplicate] = []
    root = _compose(text, source, duplicates)
    for twice in duplicates:
        check.issue(
            twice.line,
            _join(twice.path, twice.key),
            f"duplicate key {twice.key!r} (first defined at line {twice.first_line}); keep one of them",
            twice.column,
        )
    top = check.mapping(root, "", TOP_KEYS)
    mode = check.scalar(top, "", "mode", str, "production", choices=MODES)
    # The sections are read in file-documentation order, so issues are listed in that order too.
    instance_path = _instance_path(check, top, base_dir or Path.cwd())
    database = _database_section(check, top, instance_path)
    vault = _vault_section(check, top)
    web = _web_section(check, top, base_dir or Path.cwd())
    api = _api_section(check, top)
    scheduler = _scheduler_section(check, top)
    mail = _mail_section(check, top, instance_path)
    statutory = _statutory_section(check, top)
    metrics = _metrics_section(check, top)
    known_providers = provider_names if provider_names is not None else _provider_names()
    providers = _providers_section(check, top, known_providers, web.base_url)
    if mode == "production":
        _check_published_hosts(check, top, providers)
    log_level = check.scalar(
        top, "", "log_level", str, "INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
    )
    cadences = _section_dict(check, top, "cadences")
    policies = _section_dict(check, top, "policies")
    rules = _check_rules(check, top, cadences, policies)

    if check.issues:
        raise ConfigError(check.issues)
    return Settings(
        source=source,
        instance_path=instance_path,
        database=database,
        vault=vault,
        web=web,
        scheduler=scheduler,
        mail=mail,
        statutory=statutory,
        providers=providers,
        mode=mode,
        log_level=log_level,
        cadences=cadences,
        policies=policies,
        rules=rules,
        warnings=tuple(check.warnings),
        api=api,
        metrics=metrics,
    )


def _instance_path(check: _Checker, top: dict[str, _Node], base: Path) -> str:
    """`instance_path`, made absolute against the config file's folder."""
    instance = check.scalar(top, "", "instance_path", str, "instance")
    return str((base / instance).resolve()) if not os.path.isabs(instance) else instance


def _database_url(url: str) -> str | None:
    if re.match(r"^(sqlite|postgresql)(\+\w+)?://", url):
        return None
    return f"expected a sqlite:/// or postgresql:// URL, got {url!r}"


def _database_section(check: _Checker, top: dict[str, _Node], instance_path: str) -> DatabaseSettings:
    """The `database:` section; SQLite under the instance folder by default."""
    db = check.mapping(top.get("database"), "database", ["url", "echo", "pool_size"])
    return DatabaseSettings(
        url=check.scalar(db, "database", "url", str, f"sqlite:///{instance_path}/nudge.sqlite3", check=_database_url),
        echo=check.scalar(db, "database", "echo", bool, False),
        pool_size=check.scalar(db, "database", "pool_size", int, 5, check=_positive),
    )


def _vault_keys(check: _Checker, vault_node: dict[str, _Node]) -> dict[str, str]:
    """`vault.keys` (key id -> base64url key); without it, the one key in $NUDGE_VAULT_KEY."""
    keys_node = vault_node.get("keys")
    if keys_node is None:
        return {"k1": check.resolve("${NUDGE_VAULT_KEY:-}", 0, "vault.keys")}
    if not isinstance(keys_node.value, dict):
        check.issue_at(keys_node, "vault.keys", "expected a mapping of key id to base64url key")
        return {}
    return {
        key_id: check.scalar({key_id: key_node}, "vault.keys", key_id, str, "")
        for key_id, key_node in keys_node.value.items()
    }


def _vault_section(check: _Checker, top: dict[str, _Node]) -> VaultSettings:
    """The `vault:` section: the keys and which one seals new tokens."""
    vault_node = check.mapping(top.get("vault"), "vault", ["active_key", "keys"])
    keys = _vault_keys(check, vault_node)
    active = check.scalar(vault_node, "vault", "active_key", str, next(iter(keys), "k1"))
    if keys and active not in keys:
        check.issue_at(
            vault_node.get("active_key"),
            "vault.active_key",
            f"expected one of the key ids under vault.keys ({', '.join(keys)}), got {active!r}",
        )
    if not any(value.strip() for value in keys.values()):
        check.warnings.append("vault: no encryption key is set; `nudge serve` and `nudge worker` will refuse to start")
    return VaultSettings(active_key=active, keys=keys)


def _invitation_days(value: int) -> str | None:
    return None if 1 <= value <= 90 else "expected a number of days 1-90"


def _customer_link_days(value: int) -> str | None:
    return None if 1 <= value <= 365 else "expected a number of days 1-365"


def _port(value: int) -> str | None:
    return None if 0 < value < 65536 else "expected a port number 1-65535"


_LIMIT_STORAGE = ("memory", "redis", "rediss", "redis+unix", "redis+sentinel", "redis+cluster")
_RATE_LIMIT = re.compile(r"^\s*\d+\s*(/|per)\s*(\d+\s*)?(second|minute|hour|day|month|year)s?\s*$", re.IGNORECASE)


def _limit_storage(uri: str) -> str | None:
    scheme = uri.partition("://")[0] if "://" in uri else ""
    if scheme in _LIMIT_STORAGE:
        return None
    return f"expected memory:// or a redis:// URL, got {uri!r}"


def _rate_limits(text: str) -> str | None:
    parts = [part for part in re.split(r"[;,]", text) if part.strip()]
    if parts and all(_RATE_LIMIT.match(part) for part in parts):
        return None
    return f"expected limits such as '5 per minute; 20 per hour', got {text!r}"


def _web_section(check: _Checker, top: dict[str, _Node], base_dir: Path) -> WebSettings:
    """The `web:` section; the secret key defaults to $NUDGE_SECRET_KEY."""
    web_node = check.mapping(top.get("web"), "web", list(WebSettings.__dataclass_fields__))
    web = WebSettings(
        secret_key=check.scalar(web_node, "web", "secret_key", str, check.resolve("${NUDGE_SECRET_KEY:-}", 0, "")),
        base_url=check.scalar(web_node, "web", "base_url", str, "http://127.0.0.1:5000", check=_url),
        host=check.scalar(web_node, "web", "host", str, "127.0.0.1"),
        port=check.scalar(web_node, "web", "port", int, 5000, check=_port),
        session_cookie_secure=_cookie_secure(check, web_node),
        ratelimit_storage_uri=check.scalar(
            web_node, "web", "ratelimit_storage_uri", str, WebSettings.ratelimit_storage_uri, check=_limit_storage
        ),
        login_limit_per_account=check.scalar(
            web_node, "web", "login_limit_per_account", str, WebSettings.login_limit_per_account, check=_rate_limits
        ),
        login_limit_per_address=check.scalar(
            web_node, "web", "login_limit_per_address", str, WebSettings.login_limit_per_address, check=_rate_limits
        ),
        invitation_valid_days=check.scalar(
            web_node, "web", "invitation_valid_days", int, WebSettings.invitation_valid_days, check=_invitation_days
        ),
        customer_link_days=check.scalar(
            web_node, "web", "customer_link_days", int, WebSettings.customer_link_days, check=_customer_link_days
        ),
        customer_page_limit=check.scalar(
            web_node, "web", "customer_page_limit", str, WebSettings.customer_page_limit, check=_rate_limits
        ),
        **_legal_pages(check, web_node, base_dir),
    )
    if not web.secret_key:
        check.warnings.append("web.secret_key is empty; `nudge serve` will refuse to start")
    return web


COOKIE_SECURE_VARIABLE = "NUDGE_SESSION_COOKIE_SECURE"


def _cookie_secure(check: _Checker, web_node: dict[str, _Node]) -> bool:
    """`web.session_cookie_secure`; $NUDGE_SESSION_COOKIE_SECURE wins over the file (`nudge dev` sets it false
    for its plain-http web app, whatever the file says)."""
    from_file: bool = check.scalar(web_node, "web", "session_cookie_secure", bool, True)
    override = check.environ.get(COOKIE_SECURE_VARIABLE, "").strip()
    if not override:
        return from_file
    value = _coerce_bool(override)
    if value is _INVALID:
        check.issue(
            None, "web.session_cookie_secure", f"expected true or false in {COOKIE_SECURE_VARIABLE}, got {override!r}"
        )
        return from_file
    return bool(value)


def _legal_pages(check: _Checker, web_node: dict[str, _Node], base_dir: Path) -> dict[str, str]:
    """`web.privacy_*` / `web.terms_*`: an http(s) URL, or a readable file (made absolute against the config's
    folder); a URL and a file for the same page at once is refused (which one would win is not obvious)."""
    pages: dict[str, str] = {}
    for page in ("privacy", "terms"):
        url = check.scalar(web_node, "web", f"{page}_url", str, "", check=_url_or_empty)
        file = check.scalar(web_node, "web", f"{page}_file", str, "")
        if file:
            path = Path(file) if os.path.isabs(file) else base_dir / file
            if not path.is_file():
                check.issue_at(web_node.get(f"{page}_file"), f"web.{page}_file", f"no such file: {str(path)!r}")
            file = str(path.resolve())
        if url and file:
            check.issue_at(web_node.get(f"{page}_file"), f"web.{page}_file", f"set {page}_url or {page}_file, not both")
        pages[f"{page}_url"], pages[f"{page}_file"] = url, file
    return pages


def _url_or_empty(value: str) -> str | None:
    return _url(value) if value else None


def _api_section(check: _Checker, top: dict[str, _Node]) -> ApiSettings:
    """The `api:` section: the per-token (or per-user) rate limit."""
    api_node = check.mapping(top.get("api"), "api", list(ApiSettings.__dataclass_fields__))
    return ApiSettings(
        rate_limit=check.scalar(api_node, "api", "rate_limit", str, ApiSettings.rate_limit, check=_rate_limits)
    )


def _scheduler_section(check: _Checker, top: dict[str, _Node]) -> SchedulerSettings:
    """The `scheduler:` section: every field a positive whole number."""
    sched_fields = [f.name for f in SchedulerSettings.__dataclass_fields__.values()]
    sched_node = check.mapping(top.get("scheduler"), "scheduler", sched_fields)
    return SchedulerSettings(
        **{
            name: check.scalar(sched_node, "scheduler", name, int, getattr(SchedulerSettings, name), check=_positive)
            for name in sched_fields
        }
    )


_MAIL_CHOICES = {
    "backend": ("maildir", "smtp"),
    "smtp_security": ("starttls", "ssl", "none"),
    "imap_security": ("starttls", "ssl", "none"),
}


def _mail_section(check: _Checker, top: dict[str, _Node], instance_path: str) -> MailSettings:
    """The `mail:` section; the maildir outbox defaults to `<instance>/outbox`."""
    mail_fields = list(MailSettings.__dataclass_fields__)
    mail_node = check.mapping(top.get("mail"), "mail", mail_fields)
    mail_values: dict[str, Any] = {}
    for name in mail_fields:
        default = getattr(MailSettings, name)
        kind = int if isinstance(default, int) else str
        mail_values[name] = check.scalar(mail_node, "mail", name, kind, default, choices=_MAIL_CHOICES.get(name, ()))
    if not mail_values["outbox_path"]:
        mail_values["outbox_path"] = os.path.join(instance_path, "outbox")
    return MailSettings(**mail_values)


def _statutory_section(check: _Checker, top: dict[str, _Node]) -> StatutorySettings:
    """The `statutory:` section: reference rates for the statutory late-fee presets."""
    stat_node = check.mapping(top.get("statutory"), "statutory", ["uk_base_rate", "eu_reference_rate"])
    return StatutorySettings(
        uk_base_rate=check.scalar(stat_node, "statutory", "uk_base_rate", Decimal, StatutorySettings.uk_base_rate),
        eu_reference_rate=check.scalar(
            stat_node, "statutory", "eu_reference_rate", Decimal, StatutorySettings.eu_reference_rate
        ),
    )


METRICS_TOKEN_MIN_LENGTH = 16
_TOKEN_TEXT = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces: it travels in an Authorization header


def _metrics_token(token: str) -> str | None:
    if not token:
        return None
    if not _TOKEN_TEXT.match(token):
        return "expected printable ASCII without spaces (it is sent as 'Authorization: Bearer <token>')"
    if len(token) < METRICS_TOKEN_MIN_LENGTH:
        return f"too short: use at least {METRICS_TOKEN_MIN_LENGTH} random characters (got {len(token)})"
    return None


def _metrics_section(check: _Checker, top: dict[str, _Node]) -> MetricsSettings:
    """The `metrics:` section; the token defaults to $NUDGE_METRICS_TOKEN (unset: /metrics answers 404)."""
    node = check.mapping(top.get("metrics"), "metrics", ["token"])
    if "token" in node:
        return MetricsSettings(token=check.scalar(node, "metrics", "token", str, "", check=_metrics_token))
    token = check.resolve("${NUDGE_METRICS_TOKEN:-}", 0, "metrics.token")
    problem = _metrics_token(token)
    if problem:  # no line to name: the value came from the environment alone
        check.issue(None, "metrics.token", f"{problem} (from NUDGE_METRICS_TOKEN)")
        return MetricsSettings()
    return MetricsSettings(token=token)


def _providers_section(
    check: _Checker, top: dict[str, _Node], known_providers: list[str], base_url: str
) -> dict[str, ProviderSettings]:
    """The `providers:` section: the enabled providers by key (disabled ones are checked, then dropped)."""
    providers: dict[str, ProviderSettings] = {}
    for key, node in check.mapping(top.get("providers"), "providers", known_providers).items():
        if key not in known_providers:
            continue
        settings = _provider_block(check, key, node, base_url)
        if settings is not None:
            providers[key] = settings
    return providers


def _provider_block(check: _Checker, key: str, node: _Node, base_url: str) -> ProviderSettings | None:
    """One provider's block; None when it is disabled (its `${...}` references are then not required)."""
    path = f"providers.{key}"
    block = check.mapping(node, path, PROVIDER_KEYS)
    enabled = check.scalar(block, path, "enabled", bool, True)
    strict = bool(enabled)
    options = _provider_options(check, block, path)
    scopes = _provider_scopes(check, block, path)
    settings = ProviderSettings(
        key=key,
        client_id=check.scalar(block, path, "client_id", str, "", required_env=strict),
        client_secret=check.scalar(block, path, "client_secret", str, "", required_env=strict),
        redirect_uri=check.scalar(
            block, path, "redirect_uri", str, f"{base_url}/oauth/{key}/callback", check=_url, required_env=strict
        ),
        webhook_key=check.scalar(block, path, "webhook_key", str, "", required_env=strict),
        environment=check.scalar(block, path, "environment", str, "production", required_env=strict),
        api_base=check.scalar(block, path, "api_base", str, "", required_env=strict),
        identity_base=check.scalar(block, path, "identity_base", str, "", required_env=strict),
        scopes=tuple(scopes),
        options=options,
    )
    if not enabled:
        return None
    for name in ("client_id", "client_secret"):
        # A key that is present but empty had its missing environment variable reported already.
        if not getattr(settings, name) and name not in block:
            check.issue_at(node, f"{path}.{name}", f"required when the provider is enabled (set {name})")
    return settings


def _check_published_hosts(check: _Checker, top: dict[str, _Node], providers: Mapping[str, ProviderSettings]) -> None:
    """Production mode: every provider base URL given is https on the provider's own published domain."""
    section = top.get("providers")
    blocks = section.value if section is not None and isinstance(section.value, dict) else {}
    for key, settings in providers.items():
        block = blocks.get(key)
        nodes = block.value if block is not None and isinstance(block.value, dict) else {}
        for name in PROVIDER_URL_KEYS:
            value = getattr(settings, name)
            if name == "environment" and "://" not in value:
                continue  # production | sandbox: the provider's own hosts
            problem = _unpublished(key, value)
            if problem:
                check.issue_at(nodes.get(name), f"providers.{key}.{name}", problem)


def _unpublished(provider: str, url: str) -> str | None:
    """Why `url` is not one of `provider`'s published https hosts (None when it is, or is empty)."""
    if not url:
        return None
    parsed = urlsplit(url)
    host = (parsed.hostname or "").lower()
    domains = PUBLISHED_DOMAINS.get(provider, ())
    published = any(host == domain or host.endswith(f".{domain}") for domain in domains)
    if parsed.scheme == "https" and (published or (not domains and _public_host(host))):
        return None
    allowed = ", ".join(f"https://*.{domain}" for domain in domains) or "https on a public host"
    return (
        f"in production mode a provider URL must be {allowed}, got {url!r} "
        "(set `mode: development` to use a local emulator)"
    )


def _public_host(host: str) -> bool:
    """False for localhost and private, loopback, link-local or reserved IP addresses."""
    if not host or host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return True
    return address.is_global


def _provider_options(check: _Checker, block: dict[str, _Node], path: str) -> dict[str, Any]:
    """A provider's free-form `options:` mapping."""
    options_node = block.get("options")
    options = _plain(options_node) if options_node is not None else {}
    if not isinstance(options, dict):
        check.issue_at(options_node, f"{path}.options", "expected a mapping")
        return {}
    return options


def _provider_scopes(check: _Checker, block: dict[str, _Node], path: str) -> list[str]:
    """A provider's `scopes:` list of OAuth scope names."""
    scopes_node = block.get("scopes")
    scopes = _plain(scopes_node) if scopes_node is not None else []
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        check.issue_at(scopes_node, f"{path}.scopes", "expected a list of scope names")
        return []
    return scopes


def _section_dict(check: _Checker, top: dict[str, _Node], key: str) -> dict[str, Any]:
    node = top.get(key)
    if node is None:
        return {}
    value = _plain(node)
    if not isinstance(value, dict):
        check.issue_at(node, key, "expected a mapping of names to definitions")
        return {}
    return value


def _check_rules(
    check: _Checker, top: dict[str, _Node], cadences: dict[str, Any], policies: dict[str, Any]
) -> PolicySet:
    """Parse cadences and policies with the domain's own parser, reporting each at its line."""
    empty = PolicySet()
    policies_node = top.get("policies")
    try:
        policy_from_dict(policies)
    except PolicyError as exc:
        check.issue_at(policies_node, "policies", str(exc))
        return empty
    cadences_node = top.get("cadences")
    failed = False
    for name, definition in cadences.items():
        try:
            policy_from_dict({**policies, "cadences": {name: definition}})
        except PolicyError as exc:
            failed = True
            entry = cadences_node.value.get(name) if cadences_node and isinstance(cadences_node.value, dict) else None
            check.issue_at(entry, f"cadences.{name}", str(exc))
    if failed:
        return empty
    return policy_from_dict({**policies, "cadences": cadences})


# -- a library file (nudge library import) --------------------------------------------------------
LIBRARY_KEYS = ["cadences", "policies", "templates"]


@dataclass(frozen=True)
class LibraryText:
    """A library file checked like the config's `cadences:`/`policies:` (plus a `templates:` block of sources).

    `templates` is None when the file has no `templates:` block; `lines` gives the line of each template part
    ("templates.<name>.<part>") and cadence ("cadences.<name>"), so what is refused later (a template that
    does not render, a cadence that does not fit the rest of the library) is reported at its line too.
    """

    cadences: Mapping[str, Any]
    policies: Mapping[str, Any]
    templates: Mapping[str, Mapping[str, str]] | None
    rules: PolicySet
    lines: Mapping[str, int] = field(default_factory=dict)


def check_library_text(text: str, source: str = "<library>") -> LibraryText:
    """Check a library file with the same file:line messages as `nudge check-config`; ConfigError listing
    every issue. No environment variables are substituted: a library holds no secrets."""
    check = _Checker(source, {})
    duplicates: list[_Duplicate] = []
    root = _compose(text, source, duplicates)
    for twice in duplicates:
        check.issue(
            twice.line,
            _join(twice.path, twice.key),
            f"duplicate key {twice.key!r} (first defined at line {twice.first_line}); keep one of them",
            twice.column,
        )
    top = check.mapping(root, "", LIBRARY_KEYS)
    cadences = _section_dict(check, top, "cadences")
    policies = _section_dict(check, top, "policies")
    templates, lines = _templates_section(check, top)
    rules = _check_rules(check, top, cadences, policies)
    if check.issues:
        raise ConfigError(check.issues)
    cadences_node = top.get("cadences")
    if cadences_node is not None and isinstance(cadences_node.value, dict):
        lines.update({f"cadences.{name}": node.line for name, node in cadences_node.value.items()})
    return LibraryText(cadences, policies, templates, rules, lines)


_TEMPLATE_PARTS = ("subject.txt", "body.txt", "body.html")


def _templates_section(
    check: _Checker, top: dict[str, _Node]
) -> tuple[dict[str, dict[str, str]] | None, dict[str, int]]:
    """`templates:` {name: {subject.txt, body.txt, body.html: source}}, and the line of each part."""
    node = top.get("templates")
    if node is None:
        return None, {}
    if not isinstance(node.value, dict):
        check.issue_at(node, "templates", "expected a mapping of template names to their parts")
        return {}, {}
    templates: dict[str, dict[str, str]] = {}
    lines: dict[str, int] = {}
    for name, template_node in node.value.items():
        path = f"templates.{name}"
        parts = check.mapping(template_node, path, list(_TEMPLATE_PARTS))
        templates[name] = {}
        for part, part_node in parts.items():
            if part not in _TEMPLATE_PARTS:
                continue
            if not isinstance(part_node.value, str):
                check.issue_at(
                    part_node, f"{path}.{part}", f"expected the template's text, got {_kind(part_node.value)}"
                )
                continue
            templates[name][part] = part_node.value
            lines[f"{path}.{part}"] = part_node.line
    return templates, lines


def _provider_names() -> list[str]:
    from connector.registry import available_provider_names

    return available_provider_names()


ENV_FILE = ".env"


def load_env_files(config_path: str | None = None) -> list[Path]:
    """Put the variables of `./.env`, then of the `.env` next to `config_path`, into os.environ; a variable that
    is already set wins (the real environment over either file, the working directory's file over the other).

    `nudge init` writes the keys there, so they survive the shell they were made in. Returns the files read.
    """
    from dotenv import load_dotenv

    candidates = [Path.cwd() / ENV_FILE]
    if config_path:
        candidates.append(Path(config_path).resolve().parent / ENV_FILE)
    loaded: list[Path] = []
    for candidate in candidates:
        if candidate.is_file() and candidate.resolve() not in loaded:
            load_dotenv(candidate, override=False, interpolate=False)
            loaded.append(candidate.resolve())
    return loaded


def load_settings(path: str | None = None, *, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from `path`, else $NUDGE_CONFIG, else the built-in defaults (SQLite under ./instance).

    Without an explicit `environ`, the `.env` files (`load_env_files`) fill in what the environment lacks first.
    """
    if environ is None:
        load_env_files()
    env = os.environ if environ is None else environ
    chosen = path or env.get("NUDGE_CONFIG") or ""
    if environ is None and chosen:
        load_env_files(chosen)
    if not chosen:
        return parse_settings("{}", source="<defaults>", environ=env)
    file = Path(chosen)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(file), None, "", f"cannot read config file: {exc.strerror}")]) from None
    return parse_settings(text, source=str(file), environ=env, base_dir=file.resolve().parent)


def settings_for_tests(database_url: str, **overrides: Any) -> Settings:
    """Settings for tests: the given database, a fresh vault key, a web secret, no providers."""
    from connector.vault.keyring import generate_key

    base = parse_settings(
        "mode: development",
        source="<tests>",
        environ={"NUDGE_VAULT_KEY": generate_key()},
        provider_names=[],
    )
    settings = replace(
        base,
        database=replace(base.database, url=database_url),
        web=replace(base.web, secret_key="test-secret-key-" + os.urandom(8).hex(), session_cookie_secure=False),
    )
    return replace(settings, **overrides)
