"""The one renderer for marketer-authored HTML (landing pages, list emails).

Marketers write Jinja2 (``{{ prospect.first_name }}``, ``{% if %}``, ``{% for %}``). Their templates
run on the server for every visitor and every recipient, so a template is treated as untrusted
code: it runs in :class:`jinja2.sandbox.ImmutableSandboxedEnvironment`, narrowed further here.

What a template can see
    Only the registered merge fields (:func:`register_merge_field`), as nested plain dicts of
    strings (``prospect`` → ``{"first_name": "太郎", …}``), never model instances; the global
    ``range`` (at most :data:`MAX_RANGE_ITEMS` items); ``loop`` inside ``{% for %}``; and the
    filters in :data:`ALLOWED_FILTERS`. Apps contribute the fields they own from their
    ``AppConfig.ready()``, like the action catalogue. Values that change with each render (an
    unsubscribe link) are registered without ``resolve`` and passed in ``MergeContext.extra``.
    Only the fields a template names are resolved, so a field that costs a query costs nothing
    to templates that do not use it.

What a template cannot do (refused with :class:`TemplateError`, before or while rendering)
    Reach Python internals (``__class__``, ``|attr``, ``self``, ``cycler``…), call anything but
    ``range()``, ``loop.cycle()`` and ``loop.changed()``, load other templates (``include``,
    ``import``, ``extends``: there is no loader), define macros, turn autoescaping off, or use up
    the server: the source and its number of tags, the output, loop iterations, string, list
    and number sizes, nesting, and the wall-clock time of one render are capped (the ``MAX_*``
    constants). Jinja's own sandbox
    leaves those resource limits to the caller (listmonk, whose templates have the same shape,
    documents loops and huge concatenations as an accepted risk); a marketing page can do
    without a billion-item loop.

Escaping
    Autoescaping is always on and cannot be switched off, and ``|safe`` does not exist: every
    merge value (a prospect's name may be ``<script>…``: it came in through a public form) is
    HTML-escaped. The marketer's own literal HTML passes through the renderer unchanged; what
    each caller then does with it depends on where it is shown.

    Inside the app the same HTML would run with a signed-in user's session (listmonk
    CVE-2026-21483: a campaign author's script ran when an administrator previewed it), so every
    place that shows rendered marketer HTML inside the app (editor previews, report
    thumbnails) must pass it through :func:`sanitize_html` first, and should also show it in a
    sandboxed iframe. Public landing pages are sanitised too (forms/landing_pages.py): without a
    tracker domain they are served on the app's own host, where a script would run with the
    session of any signed-in user who opens them. Sent emails are not sanitised here (mail
    clients do not run scripts; the email pipeline decides its own rules).

Missing values
    A merge field without a value (a prospect with no job title) renders ``""``;
    ``|default("ご担当者")`` replaces it (here ``default`` treats an empty value as missing, which
    is what a marketer means). A name that is not a registered merge field is reported by
    :func:`template_validate`, which editors run before saving, and renders ``""`` at send time
    (:class:`jinja2.ChainableUndefined`): a field removed after a template was saved must not
    stop a send of ten thousand emails. Strict undefined is the wrong tool here because
    validation already catches the marketer's typo where they can fix it.
"""

from __future__ import annotations

import contextvars
import functools
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, cast

import nh3
from django.utils.translation import gettext, gettext_noop
from django.utils.translation import gettext_lazy as _
from jinja2 import ChainableUndefined, Undefined, meta, nodes
from jinja2 import filters as jinja_filters
from jinja2.exceptions import TemplateError as JinjaTemplateError
from jinja2.exceptions import TemplateSyntaxError
from jinja2.runtime import Context, LoopContext, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import pass_context, pass_environment, pass_eval_context
from jinja2.visitor import NodeTransformer
from markupsafe import escape

if TYPE_CHECKING:
    from django.utils.functional import Promise
    from jinja2 import Environment
    from jinja2.nodes import EvalContext

    from mapp.models import User
    from prospects.models import Prospect

# --- Limits -------------------------------------------------------------------------------------
# A real landing page is 5-50 KB of HTML; 200 KB leaves room for inlined CSS and images'
# markup. (What compiling costs depends on the number of tags, capped below.)
MAX_SOURCE_LENGTH = 200_000
# Tags ({{ … }} and {% … %}) in one template. Compiling costs per tag, not per byte (200 KB of
# `{% if %}` tags take ≈ 3 s in plain Jinja); a rich landing page has a few hundred.
MAX_TEMPLATE_TAGS = 2_000
# Characters of output of one render (≈ 2-6 MB of UTF-8). A page or email larger than this is
# a mistake or an attack; mail providers clip messages far smaller (Gmail: 102 KB).
MAX_OUTPUT_LENGTH = 2_000_000
# range() items; the rest of the sandbox already refuses a billion, a template needs a handful.
MAX_RANGE_ITEMS = 1_000
# Loop iterations in one render, nested loops counted in full: ≈ 10 ms of Jinja work.
MAX_LOOP_ITERATIONS = 10_000
# Characters in a string built by the template (`+`, `*`, `~`, `|replace`): one such string may
# be copied or compared on each step, so its size bounds the cost of one step.
MAX_STRING_LENGTH = 100_000
# Items in a list or tuple built by `+` or `*`.
MAX_SEQUENCE_ITEMS = 1_000
# Bits in an integer built by `*` or `**`: 10**77 fits; 9**9**9 (370 million digits, minutes
# of CPU) does not.
MAX_INTEGER_BITS = 256
# Wall-clock time of one render. Real templates take milliseconds; this is the backstop for
# work the other limits let through in small pieces.
MAX_RENDER_SECONDS = 2.0
# Compiled templates kept per process: a list email renders the same source once per recipient.
COMPILED_CACHE_SIZE = 64


class TemplateError(ValueError):
    """A template that cannot be used, with a translated message for the marketer.

    ``lineno`` is the template line the problem is on when known; ``messages`` lists every
    problem found (the first one is ``str(error)``).
    """

    def __init__(
        self, message: str, *, lineno: int | None = None, messages: Sequence[str] = ()
    ) -> None:
        self.message = message
        self.lineno = lineno
        shown = _with_line(message, lineno)
        self.messages: list[str] = list(messages) or [shown]
        super().__init__(shown)


def _with_line(message: str, lineno: int | None) -> str:
    if lineno is None:
        return message
    return gettext("Line %(line)d: %(message)s") % {"line": lineno, "message": message}


# --- Merge fields -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MergeContext:
    """What a render is about.

    ``prospect`` is the recipient or visitor (``None`` for an anonymous page view or a preview);
    ``user`` the sender (the email's "from" user); ``extra`` values for fields registered without
    ``resolve`` (``{"unsubscribe_url": …}``); ``preview`` shows each field's example when there is
    no prospect, so the editor's preview is not full of holes.
    """

    prospect: Prospect | None = None
    user: User | None = None
    extra: dict[str, str] = field(default_factory=dict)
    preview: bool = False


@dataclass(frozen=True)
class MergeField:
    """One value a template can insert, e.g. ``{{ prospect.first_name }}``.

    ``key`` is dotted: ``group.name`` (or a top-level ``name``, or up to three parts). ``resolve``
    returns the value for a context (``""`` when there is none); a field without ``resolve`` takes
    its value from ``MergeContext.extra`` per render. ``example`` is shown in previews.
    """

    key: str
    label: str | Promise
    group: str | Promise
    resolve: Callable[[MergeContext], str] | None = None
    example: str = ""

    @property
    def placeholder(self) -> str:
        """What the editor's insert menu puts into the template."""
        return "{{ " + self.key + " }}"


_KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*){0,2}$")
# A name a template could not reach as a variable (Jinja keywords, the sandbox's own names).
_RESERVED_ROOTS = frozenset(
    {"loop", "range", "self", "super", "caller", "varargs", "kwargs", "true", "false", "none"}
    | {"and", "or", "not", "in", "is", "if", "else", "for", "recursive"}
)
# `prospect.items` finds the dict method before the key, so no field may be named like one.
_DICT_ATTRIBUTES = frozenset(name for name in dir(dict) if not name.startswith("_"))

_fields: dict[str, MergeField] = {}


def register_merge_field(merge_field: MergeField) -> None:
    """Add (or replace, by key) a merge field; called from the owning app's ``ready()``."""
    key = merge_field.key
    if not _KEY_PATTERN.match(key):
        raise ValueError(f"Merge field key {key!r} must be lowercase dotted names (a.b or a.b.c)")
    parts = key.split(".")
    if parts[0] in _RESERVED_ROOTS or any(part in _DICT_ATTRIBUTES for part in parts[1:]):
        raise ValueError(f"Merge field key {key!r} uses a name templates cannot reach")
    for existing in _fields:
        if existing != key and (existing.startswith(key + ".") or key.startswith(existing + ".")):
            raise ValueError(f"Merge field {key!r} clashes with {existing!r}")
    _fields[key] = merge_field


def merge_field_catalogue() -> list[MergeField]:
    """Every registered merge field, in registration order (the editor groups by ``group``)."""
    return list(_fields.values())


def _field_value(merge_field: MergeField, context: MergeContext) -> str:
    if merge_field.key in context.extra:
        # str() of a Markup is a plain str: a caller's value is escaped like any other.
        value = str(context.extra[merge_field.key])
    elif merge_field.resolve is not None:
        value = str(merge_field.resolve(context) or "")
    else:
        value = ""
    if not value and context.preview and context.prospect is None:
        return merge_field.example
    return value


def _prospect_attribute(name: str) -> Callable[[MergeContext], str]:
    def resolve(context: MergeContext) -> str:
        if context.prospect is None:
            return ""
        return str(getattr(context.prospect, name) or "")

    return resolve


def _sender_name(context: MergeContext) -> str:
    if context.user is None:
        return ""
    # Japanese order, as everywhere in mapp: family name first.
    return f"{context.user.last_name} {context.user.first_name}".strip()


def _sender_email(context: MergeContext) -> str:
    return context.user.email if context.user is not None else ""


def _account_name(context: MergeContext) -> str:
    from mapp.models import AccountSettings

    # AccountSettings has no organisation name column yet (the lead adds ``name``); until it
    # does, the field is empty and previews show its example.
    return str(getattr(AccountSettings.load(), "name", "") or "")


def _register_default_fields() -> None:
    """The fields mapp knows from its own data: prospects' columns, the account, the sender.

    Prospect values are read from the instance the caller passes (duck-typed, no import of
    ``prospects``), so mapp core does not depend on a higher app.
    """
    prospect = _("Prospect")
    for key, attribute, label, example in [
        ("prospect.last_name", "last_name", _("Last name"), "山田"),
        ("prospect.first_name", "first_name", _("First name"), "太郎"),
        # Prospect.full_name is "姓 名" (family name first).
        ("prospect.full_name", "full_name", _("Full name"), "山田 太郎"),
        ("prospect.email", "email", _("Email address"), "taro.yamada@example.co.jp"),
        ("prospect.company", "company_name", _("Company"), "株式会社サンプル"),
        ("prospect.department", "department", _("Department"), "営業部"),
        ("prospect.job_title", "job_title", _("Job title"), "部長"),
        ("prospect.phone", "phone", _("Phone"), "03-1234-5678"),
    ]:
        register_merge_field(
            MergeField(
                key=key,
                label=label,
                group=prospect,
                resolve=_prospect_attribute(attribute),
                example=example,
            )
        )
    register_merge_field(
        MergeField(
            key="account.name",
            label=_("Account name"),
            group=_("Account"),
            resolve=_account_name,
            example="株式会社マップ",
        )
    )
    sender = _("Sender")
    register_merge_field(
        MergeField(
            key="sender.name",
            label=_("Sender name"),
            group=sender,
            resolve=_sender_name,
            example="鈴木 一郎",
        )
    )
    register_merge_field(
        MergeField(
            key="sender.email",
            label=_("Sender email address"),
            group=sender,
            resolve=_sender_email,
            example="ichiro.suzuki@example.co.jp",
        )
    )


_register_default_fields()


def _registry_keys_for(path: tuple[str, ...]) -> tuple[list[str], bool]:
    """The registered keys a reference like ``prospect.first_name`` needs, and if it is a field.

    A leaf needs that leaf; a group (``prospect``, or ``prospect[name]`` with a computed name)
    needs all of it. Something under a leaf (``prospect.first_name.upper``) is not a merge field,
    but the leaf is still resolved, so that rendering reaches the sandbox's refusal instead of
    silently printing nothing.
    """
    for depth in range(len(path), 0, -1):
        key = ".".join(path[:depth])
        if key in _fields:
            return [key], depth == len(path)
    prefix = ".".join(path) + "."
    under = [key for key in _fields if key.startswith(prefix)]
    return under, bool(under)


def _merge_values(paths: Iterable[tuple[str, ...]], context: MergeContext) -> dict[str, Any]:
    unknown = sorted(set(context.extra) - set(_fields))
    if unknown:
        # A programming error in the caller, not a template problem: no TemplateError.
        raise ValueError(f"MergeContext.extra has unregistered merge fields: {unknown}")
    wanted: set[str] = set()
    for path in paths:
        wanted.update(_registry_keys_for(path)[0])
    values: dict[str, Any] = {}
    for key in _fields:
        if key not in wanted:
            continue
        *groups, leaf = key.split(".")
        target = values
        for group in groups:
            target = target.setdefault(group, {})
        target[leaf] = _field_value(_fields[key], context)
    return values


# --- Per-render budget --------------------------------------------------------------------------


@dataclass
class _RenderBudget:
    deadline: float
    iterations: int = 0
    written: int = 0

    @classmethod
    def start(cls) -> _RenderBudget:
        return cls(deadline=time.monotonic() + MAX_RENDER_SECONDS)

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateError(
                gettext("The template took too long to render (more than %(seconds)s seconds).")
                % {"seconds": MAX_RENDER_SECONDS}
            )

    def iterate(self) -> None:
        self.iterations += 1
        if self.iterations > MAX_LOOP_ITERATIONS:
            raise TemplateError(
                gettext("The template repeats too often (more than %(limit)s loop iterations).")
                % {"limit": f"{MAX_LOOP_ITERATIONS:,}"}
            )
        self.tick()

    def write(self, length: int) -> None:
        # Counts text also when it goes into {% set %} / {% filter %} buffers, which the
        # streamed output never sees: the cap is on work done, so counting twice is fine.
        self.written += length
        if self.written > MAX_OUTPUT_LENGTH:
            raise _output_too_large()
        self.tick()


def _output_too_large() -> TemplateError:
    return TemplateError(
        gettext("The page is too large (more than %(limit)s characters).")
        % {"limit": f"{MAX_OUTPUT_LENGTH:,}"}
    )


_budget: contextvars.ContextVar[_RenderBudget | None] = contextvars.ContextVar(
    "mapp_template_budget", default=None
)


def _current_budget() -> _RenderBudget:
    # Outside render_marketer_template (Jinja folding constants at compile time) a throwaway
    # budget still bounds the time of the one call.
    return _budget.get() or _RenderBudget.start()


def _too_long() -> TemplateError:
    return TemplateError(
        gettext("The text is too long (more than %(limit)s characters).")
        % {"limit": f"{MAX_STRING_LENGTH:,}"}
    )


def _check_length(length: int, *, items: bool = False) -> None:
    if items and length > MAX_SEQUENCE_ITEMS:
        raise TemplateError(
            gettext("The list is too long (more than %(limit)s items).")
            % {"limit": f"{MAX_SEQUENCE_ITEMS:,}"}
        )
    if not items and length > MAX_STRING_LENGTH:
        raise _too_long()


def _number_too_large() -> TemplateError:
    return TemplateError(gettext("The number is too large."))


_CONTAINERS = (list, tuple, dict, set, frozenset)


def _text(value: Any) -> Any:
    """The value as text for a filter or a join; lists and field groups are refused.

    Printing a list is never what a marketer means, and refusing it keeps the cost of turning
    a value into text proportional to its own size.
    """
    if isinstance(value, _CONTAINERS):
        raise TemplateError(
            gettext("A list or group of fields cannot be shown as text; show its items one by one.")
        )
    if isinstance(value, str):
        return value
    if callable(value) and not isinstance(value, Undefined):
        raise TemplateError(gettext("A function cannot be shown as text."))
    return str(value)


# --- Filters ------------------------------------------------------------------------------------
# Each one ticks the budget and refuses lists, so no filter call costs more than one value's size.


def _default(value: Any, default_value: Any = "", boolean: bool = True) -> Any:
    _current_budget().tick()
    if isinstance(value, Undefined) or (boolean and not value):
        return default_value
    return value


def _upper(value: Any) -> str:
    _current_budget().tick()
    return jinja_filters.do_upper(_text(value))


def _lower(value: Any) -> str:
    _current_budget().tick()
    return jinja_filters.do_lower(_text(value))


def _title(value: Any) -> str:
    _current_budget().tick()
    return jinja_filters.do_title(_text(value))


def _trim(value: Any, chars: str | None = None) -> str:
    _current_budget().tick()
    return jinja_filters.do_trim(_text(value), None if chars is None else _text(chars))


@pass_environment
def _truncate(
    environment: Environment,
    value: Any,
    length: int = 255,
    killwords: bool = False,
    end: str = "...",
    leeway: int | None = None,
) -> str:
    _current_budget().tick()
    return jinja_filters.do_truncate(
        environment, _text(value), length, killwords, _text(end), leeway
    )


@pass_eval_context
def _replace(
    eval_ctx: EvalContext, value: Any, old: Any, new: Any, count: int | None = None
) -> str:
    _current_budget().tick()
    text, old_text, new_text = _text(value), _text(old), _text(new)
    occurrences = text.count(old_text)
    if count is not None:
        occurrences = min(occurrences, max(int(count), 0))
    _check_length(len(text) + occurrences * (len(new_text) - len(old_text)))
    return jinja_filters.do_replace(eval_ctx, text, old_text, new_text, count)


def _escape(value: Any) -> Any:
    _current_budget().tick()
    return escape(_text(value))


def _length(value: Any) -> int:
    _current_budget().tick()
    return len(value)


ALLOWED_FILTERS: dict[str, Callable[..., Any]] = {
    "default": _default,
    "d": _default,
    "upper": _upper,
    "lower": _lower,
    "title": _title,
    "trim": _trim,
    "truncate": _truncate,
    "replace": _replace,
    "escape": _escape,
    "e": _escape,
    "length": _length,
}

# Filters the guard (below) wraps around the marketer's nodes; not usable in templates.
_LOOP_FILTER = "mapp_guard_loop"
_OUTPUT_FILTER = "mapp_guard_output"
_CONCAT_FILTER = "mapp_guard_concat"
_TICK_FILTER = "mapp_guard_tick"
_FLAT_FILTER = "mapp_guard_flat"


@pass_context
def _guard_loop(context: Context, iterable: Any) -> Iterator[Any]:
    budget = _current_budget()
    budget.tick()
    for item in iterable:
        budget.iterate()
        yield item


@pass_context
def _guard_output(context: Context, value: Any) -> Any:
    text = value if isinstance(value, str) else _text(value)
    _current_budget().write(len(text))
    return value


@pass_eval_context
def _guard_concat(eval_ctx: EvalContext, items: list[Any]) -> str:
    _current_budget().tick()
    texts = [_text(item) for item in items]
    _check_length(sum(len(text) for text in texts))
    joined: str = markup_join(items) if eval_ctx.autoescape else str_join(items)
    return joined


@pass_context
def _guard_tick(context: Context, value: Any) -> Any:
    _current_budget().tick()
    return value


@pass_context
def _guard_flat(context: Context, value: Any) -> Any:
    """Lists and dicts written in a template hold plain values only.

    ``{% set x = [x, x] %}`` repeated 60 times builds 2**60 items in a few bytes of source, and
    printing or comparing it never returns: one level of nesting makes that impossible.
    """
    _current_budget().tick()
    items = value.values() if isinstance(value, dict) else value
    if any(isinstance(item, _CONTAINERS) for item in items):
        raise TemplateError(gettext("Lists and groups inside lists are not allowed in templates."))
    return value


# --- Calls and operators ------------------------------------------------------------------------


def _bounded_range(*args: int) -> range:
    _current_budget().tick()
    try:
        numbers = range(*args)
        size = len(numbers)
    except OverflowError:
        size = MAX_RANGE_ITEMS + 1
    if size > MAX_RANGE_ITEMS:
        raise TemplateError(
            gettext("range() is limited to %(limit)s items.") % {"limit": f"{MAX_RANGE_ITEMS:,}"}
        )
    return numbers


_LOOP_METHODS = frozenset({"cycle", "changed"})


def _is_allowed_callable(value: Any) -> bool:
    if value is _bounded_range:
        return True
    owner = getattr(value, "__self__", None)
    return isinstance(owner, LoopContext) and getattr(value, "__name__", "") in _LOOP_METHODS


def _integer_bits(value: Any) -> int:
    return value.bit_length() if isinstance(value, int) else 0


class _MarketerSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with mapp's allow-list of calls and size checks on operators."""

    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _current_budget().tick()
        if operator == "*":
            self._check_multiply(left, right)
        elif operator == "+":
            self._check_add(left, right)
        elif operator == "**":
            self._check_power(left, right)
        elif operator == "%" and isinstance(left, str):
            # "%1000000000s" % x would be a one-operator memory bomb; filters cover formatting.
            raise TemplateError(
                gettext(
                    "Text formatting with “%(operator)s” is not allowed in templates; use filters."
                )
                % {"operator": "%"}
            )
        try:
            return super().call_binop(context, operator, left, right)
        except OverflowError:
            raise _number_too_large() from None

    @staticmethod
    def _check_multiply(left: Any, right: Any) -> None:
        for sequence, times in ((left, right), (right, left)):
            if isinstance(sequence, str | list | tuple) and isinstance(times, int):
                _check_length(len(sequence) * max(times, 0), items=not isinstance(sequence, str))
                return
        if _integer_bits(left) + _integer_bits(right) > MAX_INTEGER_BITS:
            raise _number_too_large()

    @staticmethod
    def _check_add(left: Any, right: Any) -> None:
        if isinstance(left, str) and isinstance(right, str):
            _check_length(len(left) + len(right))
        elif isinstance(left, list | tuple) and isinstance(right, list | tuple):
            _check_length(len(left) + len(right), items=True)

    @staticmethod
    def _check_power(base: Any, exponent: Any) -> None:
        if not (isinstance(base, int) and isinstance(exponent, int)):
            return  # floats overflow with OverflowError at once
        if abs(base) > 1 and exponent > 0 and exponent * math.log2(abs(base)) > MAX_INTEGER_BITS:
            raise _number_too_large()

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        _current_budget().tick()
        if not _is_allowed_callable(obj):
            raise _call_refused()
        return super().call(context, obj, *args, **kwargs)

    def getattr(self, obj: Any, attribute: str) -> Any:
        return self._checked(obj, attribute, super().getattr(obj, attribute))

    def getitem(self, obj: Any, argument: Any) -> Any:
        return self._checked(obj, argument, super().getitem(obj, argument))

    @staticmethod
    def _checked(obj: Any, name: Any, value: Any) -> Any:
        # Methods (str.format, dict.items…) are not data: refuse them even where Jinja's
        # sandbox would hand them out, so nothing but the allow-list is ever callable.
        if isinstance(value, Undefined) or not callable(value):
            return value
        if isinstance(obj, LoopContext) and name in _LOOP_METHODS:
            return value
        raise _attribute_refused(str(name))

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        # Jinja returns an Undefined that fails only when used; fail at once, with our message.
        raise _attribute_refused(attribute)


def _call_refused() -> TemplateError:
    return TemplateError(
        gettext("Only range(), loop.cycle() and loop.changed() can be called in templates.")
    )


def _attribute_refused(name: str) -> TemplateError:
    return TemplateError(gettext("“%(name)s” is not available in templates.") % {"name": name})


_environment = _MarketerSandbox(
    autoescape=True,
    undefined=ChainableUndefined,
    loader=None,
    extensions=(),
    auto_reload=False,
    keep_trailing_newline=True,
)
# Jinja's truncate leaves text up to 5 characters over the length alone; a marketer who
# writes truncate(20) means 20.
_environment.policies["truncate.leeway"] = 0
_environment.globals.clear()  # no lipsum, cycler, joiner, namespace, dict
_environment.globals["range"] = _bounded_range
_environment.filters.clear()  # no attr, format, safe, map, join…
_environment.filters.update(ALLOWED_FILTERS)
_environment.filters.update(
    {
        _LOOP_FILTER: _guard_loop,
        _OUTPUT_FILTER: _guard_output,
        _CONCAT_FILTER: _guard_concat,
        _TICK_FILTER: _guard_tick,
        _FLAT_FILTER: _guard_flat,
    }
)


# --- Inspection and compilation -----------------------------------------------------------------


@dataclass(frozen=True)
class _Problem:
    """A problem found once and cached: the message is translated when it is shown."""

    message_id: str  # marked with gettext_noop
    params: Mapping[str, Any]
    lineno: int | None

    def show(self) -> str:
        return _with_line(gettext(self.message_id) % self.params, self.lineno)


_FORBIDDEN_TAGS: dict[type[nodes.Node], str] = {
    nodes.Extends: "extends",
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "from … import",
    nodes.Macro: "macro",
    nodes.CallBlock: "call",
    nodes.ScopedEvalContextModifier: "autoescape",
    nodes.EvalContextModifier: "autoescape",
}


_TAG_REFUSED = gettext_noop("The “%(tag)s” tag is not allowed in templates.")


def _reference_path(node: nodes.Node) -> tuple[str, ...] | None:
    """``prospect.first_name`` / ``prospect["first_name"]`` as a path, None for anything else."""
    if isinstance(node, nodes.Name):
        return (node.name,) if node.ctx == "load" else None
    if isinstance(node, nodes.Getattr):
        base = _reference_path(node.node)
        return None if base is None else (*base, node.attr)
    if (
        isinstance(node, nodes.Getitem)
        and isinstance(node.arg, nodes.Const)
        and isinstance(node.arg.value, str)
    ):
        base = _reference_path(node.node)
        return None if base is None else (*base, node.arg.value)
    return None


def _collect_references(node: nodes.Node, found: list[tuple[tuple[str, ...], int]]) -> None:
    path = _reference_path(node)
    if path is not None:
        found.append((path, node.lineno))
        return
    for child in node.iter_child_nodes():
        _collect_references(child, found)


def _call_allowed_statically(callee: nodes.Node) -> bool:
    if isinstance(callee, nodes.Name):
        return callee.name == "range"
    return (
        isinstance(callee, nodes.Getattr)
        and isinstance(callee.node, nodes.Name)
        and callee.node.name == "loop"
        and callee.attr in _LOOP_METHODS
    )


def _construct_problems(template: nodes.Template) -> list[_Problem]:
    """Disallowed constructs, found before anything runs (the sandbox re-checks at run time)."""
    problems: list[_Problem] = []
    for node in _innermost_first(template):
        lineno = node.lineno
        tag = _FORBIDDEN_TAGS.get(type(node))
        if tag is not None:
            problems.append(_Problem(_TAG_REFUSED, {"tag": tag}, lineno))
        elif isinstance(node, nodes.For) and node.recursive:
            problems.append(
                _Problem(gettext_noop("Recursive loops are not allowed in templates."), {}, lineno)
            )
        elif isinstance(node, nodes.Name) and node.name == "self":
            problems.append(
                _Problem(
                    gettext_noop("“%(name)s” is not available in templates."),
                    {"name": "self"},
                    lineno,
                )
            )
        elif isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            problems.append(
                _Problem(
                    gettext_noop("“%(name)s” is not available in templates."),
                    {"name": node.attr},
                    lineno,
                )
            )
        elif (
            isinstance(node, nodes.Getitem)
            and isinstance(node.arg, nodes.Const)
            and isinstance(node.arg.value, str)
            and node.arg.value.startswith("_")
        ):
            problems.append(
                _Problem(
                    gettext_noop("“%(name)s” is not available in templates."),
                    {"name": node.arg.value},
                    lineno,
                )
            )
        elif isinstance(node, nodes.Filter) and node.name not in ALLOWED_FILTERS:
            problems.append(
                _Problem(
                    gettext_noop(
                        "The filter “%(name)s” is not available. Available filters: %(filters)s."
                    ),
                    {"name": node.name, "filters": ", ".join(sorted(ALLOWED_FILTERS))},
                    lineno,
                )
            )
        elif isinstance(node, nodes.Test) and node.name not in _environment.tests:
            problems.append(
                _Problem(
                    gettext_noop("The test “%(name)s” is not available."),
                    {"name": node.name},
                    lineno,
                )
            )
        elif isinstance(node, nodes.Call) and not _call_allowed_statically(node.node):
            problems.append(
                _Problem(
                    gettext_noop(
                        "Only range(), loop.cycle() and loop.changed() can be called in templates."
                    ),
                    {},
                    lineno,
                )
            )
    # By line; within a line forbidden tags first (they explain the rest), then innermost first:
    # ``''.__class__.__mro__`` reports __class__.
    return sorted(
        problems, key=lambda problem: (problem.lineno or 0, problem.message_id != _TAG_REFUSED)
    )


def _innermost_first(node: nodes.Node) -> Iterator[nodes.Node]:
    for child in node.iter_child_nodes():
        yield from _innermost_first(child)
    yield node


def _guard(node: nodes.Expr, filter_name: str) -> nodes.Filter:
    return nodes.Filter(node, filter_name, [], [], None, None, lineno=node.lineno)


class _GuardTransformer(NodeTransformer):
    """Wraps the marketer's loops, output, joins, comparisons and literals in budget checks.

    Jinja's code generator calls no environment hook for these (a ``{% for %}`` is a plain
    Python loop, ``~`` a plain join), so the checks go into the tree as filters that take the
    context: Jinja never folds those at compile time, so they run on every render. Literal
    HTML is counted only inside loops: elsewhere it is written once and bounded by the source.
    """

    def __init__(self) -> None:
        self.loop_depth = 0

    def visit_For(self, node: nodes.For) -> nodes.For:
        self.loop_depth += 1
        self.generic_visit(node)
        self.loop_depth -= 1
        node.iter = _guard(cast(nodes.Expr, node.iter), _LOOP_FILTER)
        return node

    def visit_Output(self, node: nodes.Output) -> nodes.Output:
        self.generic_visit(node)
        guarded: list[nodes.Expr] = []
        for child in node.nodes:
            if isinstance(child, nodes.TemplateData):
                if not self.loop_depth:
                    guarded.append(child)
                    continue
                child = nodes.MarkSafeIfAutoescape(
                    nodes.Const(child.data, lineno=child.lineno), lineno=child.lineno
                )
            guarded.append(_guard(child, _OUTPUT_FILTER))
        node.nodes = guarded
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Filter:
        self.generic_visit(node)
        return _guard(nodes.List(node.nodes, lineno=node.lineno), _CONCAT_FILTER)

    def visit_Compare(self, node: nodes.Compare) -> nodes.Filter:
        self.generic_visit(node)
        return _guard(node, _TICK_FILTER)

    def visit_Test(self, node: nodes.Test) -> nodes.Filter:
        self.generic_visit(node)
        return _guard(node, _TICK_FILTER)

    def visit_List(self, node: nodes.List) -> nodes.Expr:
        self.generic_visit(node)
        return _guard(node, _FLAT_FILTER)

    def visit_Dict(self, node: nodes.Dict) -> nodes.Expr:
        self.generic_visit(node)
        return _guard(node, _FLAT_FILTER)

    def visit_Tuple(self, node: nodes.Tuple) -> nodes.Expr:
        self.generic_visit(node)
        return node if node.ctx == "store" else _guard(node, _FLAT_FILTER)


@dataclass(frozen=True)
class _Prepared:
    """A source parsed, checked and (when clean) compiled; cached per process by source."""

    problems: tuple[_Problem, ...]
    references: tuple[tuple[tuple[str, ...], int], ...] = ()
    assigned: tuple[tuple[str, int], ...] = ()
    template: Any = None  # jinja2.Template when there are no problems


def _too_complex(lineno: int | None = None) -> _Problem:
    return _Problem(gettext_noop("The template is too deeply nested."), {}, lineno)


@functools.lru_cache(maxsize=COMPILED_CACHE_SIZE)
def _prepare(source: str) -> _Prepared:
    if len(source) > MAX_SOURCE_LENGTH:
        return _Prepared(
            (
                _Problem(
                    gettext_noop(
                        "The template is too long (%(length)s characters; at most %(limit)s)."
                    ),
                    {"length": f"{len(source):,}", "limit": f"{MAX_SOURCE_LENGTH:,}"},
                    None,
                ),
            )
        )
    tags = source.count("{{") + source.count("{%")
    if tags > MAX_TEMPLATE_TAGS:
        return _Prepared(
            (
                _Problem(
                    gettext_noop("The template has too many tags (%(count)s; at most %(limit)s)."),
                    {"count": f"{tags:,}", "limit": f"{MAX_TEMPLATE_TAGS:,}"},
                    None,
                ),
            )
        )
    try:
        tree = _environment.parse(source)
        problems = _construct_problems(tree)
        try:
            undeclared = meta.find_undeclared_variables(tree)
        except TemplateSyntaxError:
            if not problems:
                raise
            # Jinja's name tracking stops at an unknown filter, already reported above; merge
            # field names are checked once the template is otherwise valid.
            undeclared = set()
        references: list[tuple[tuple[str, ...], int]] = []
        _collect_references(tree, references)
        assigned = tuple(
            (name.name, name.lineno) for name in tree.find_all(nodes.Name) if name.ctx == "store"
        )
    except TemplateSyntaxError as error:
        return _Prepared((_syntax_problem(error),))
    except RecursionError:
        return _Prepared((_too_complex(),))
    merge_references = tuple((path, line) for path, line in references if path[0] in undeclared)
    if problems:
        return _Prepared(tuple(problems), merge_references, assigned)
    try:
        template = _environment.from_string(_GuardTransformer().visit(tree))
    except TemplateSyntaxError as error:
        return _Prepared((_syntax_problem(error),), merge_references, assigned)
    except (SyntaxError, RecursionError, MemoryError):
        # Python's own compiler limits (e.g. more than 20 nested loops).
        return _Prepared((_too_complex(),), merge_references, assigned)
    return _Prepared((), merge_references, assigned, template)


def _syntax_problem(error: TemplateSyntaxError) -> _Problem:
    # Jinja's detail text is English; the frame around it is translated.
    return _Problem(
        gettext_noop("Syntax error: %(detail)s"), {"detail": error.message}, error.lineno
    )


def _raise_problems(problems: Sequence[_Problem]) -> NoReturn:
    first = problems[0]
    raise TemplateError(
        gettext(first.message_id) % first.params,
        lineno=first.lineno,
        messages=[problem.show() for problem in problems],
    )


# --- Public API ---------------------------------------------------------------------------------


def template_validate(source: str) -> list[str]:
    """Every problem in a template, as translated messages; empty when it can be saved.

    Beyond what rendering refuses, this reports names that are not registered merge fields
    (rendering shows those as empty) and assignments that would hide a merge field.
    """
    prepared = _prepare(source)
    messages = [problem.show() for problem in prepared.problems]
    roots = {key.split(".")[0] for key in _fields}
    for name, lineno in prepared.assigned:
        if name in roots:
            messages.append(
                _with_line(
                    gettext("“%(name)s” is a merge field and cannot be assigned to.")
                    % {"name": name},
                    lineno,
                )
            )
    for path, lineno in prepared.references:
        if path[0] in _environment.globals or any(part.startswith("_") for part in path):
            continue  # range; underscores are reported above
        if not _registry_keys_for(path)[1]:
            messages.append(
                _with_line(
                    gettext("“%(name)s” is not a merge field.") % {"name": ".".join(path)},
                    lineno,
                )
            )
    return list(dict.fromkeys(messages))


def render_marketer_template(source: str, context: MergeContext) -> str:
    """Render a marketer's template for one prospect (or a preview); raises TemplateError.

    The result is HTML for the public page or the email. To show it inside the app, pass it
    through :func:`sanitize_html` (see the module docstring).
    """
    prepared = _prepare(source)
    if prepared.problems:
        _raise_problems(prepared.problems)
    variables = _merge_values((path for path, _line in prepared.references), context)
    token = _budget.set(_RenderBudget.start())
    chunks: list[str] = []
    written = 0
    try:
        for chunk in prepared.template.generate(variables):
            written += len(chunk)
            if written > MAX_OUTPUT_LENGTH:
                raise _output_too_large()
            chunks.append(chunk)
    except TemplateError as error:
        raise TemplateError(error.message, lineno=error.lineno or _template_line(error)) from error
    except RecursionError as error:
        raise TemplateError(_too_complex().show(), lineno=_template_line(error)) from error
    except (JinjaTemplateError, ArithmeticError, TypeError, ValueError, LookupError) as error:
        raise TemplateError(
            gettext("The template could not be rendered: %(detail)s") % {"detail": error},
            lineno=_template_line(error),
        ) from error
    finally:
        _budget.reset(token)
    return "".join(chunks)


def _template_line(error: BaseException) -> int | None:
    """The template line an error was raised on (Jinja rewrites tracebacks to template lines)."""
    lineno = None
    traceback = error.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == "<template>":
            lineno = traceback.tb_lineno
        traceback = traceback.tb_next
    return lineno


# --- Sanitising for display inside the app ------------------------------------------------------

_SANITIZE_TAGS = {
    *(f"h{level}" for level in range(1, 7)),
    "p", "br", "hr", "a", "img", "span", "div", "blockquote", "pre", "code",
    "strong", "b", "em", "i", "u", "s", "small", "sub", "sup",
    "ul", "ol", "li", "dl", "dt", "dd",
    "table", "caption", "colgroup", "col", "thead", "tbody", "tfoot", "tr", "th", "td",
}  # fmt: skip
# Removed with their content (everything else not allowed loses the tag and keeps the text).
_SANITIZE_CONTENT_TAGS = {"script", "style", "iframe", "object", "embed", "template", "noscript"}
_SANITIZE_ATTRIBUTES = {
    "*": {"class", "style"},
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "table": {"width", "border", "cellpadding", "cellspacing", "align"},
    "td": {"width", "height", "colspan", "rowspan", "align", "valign"},
    "th": {"width", "height", "colspan", "rowspan", "align", "valign"},
    "col": {"span", "width"},
    "colgroup": {"span", "width"},
    "ol": {"start", "type"},
}
_SANITIZE_ATTRIBUTE_VALUES = {"a": {"target": {"_blank", "_self", "_parent", "_top"}}}
# Layout and typography only: no background(-image), position, content or anything with url().
_SANITIZE_STYLE_PROPERTIES = {
    "color", "background-color", "font", "font-family", "font-size", "font-style",
    "font-weight", "line-height", "letter-spacing", "text-align", "text-decoration",
    "text-transform", "text-indent", "vertical-align", "white-space", "word-break",
    "width", "height", "max-width", "min-width", "max-height", "min-height", "display",
    "margin", "margin-top", "margin-right", "margin-bottom", "margin-left",
    "padding", "padding-top", "padding-right", "padding-bottom", "padding-left",
    "border", "border-top", "border-right", "border-bottom", "border-left", "border-color",
    "border-width", "border-style", "border-collapse", "border-spacing", "border-radius",
    "list-style-type", "table-layout",
}  # fmt: skip
_UNSAFE_CSS = re.compile(r"url\s*\(|expression\s*\(|image-set\s*\(|@import|javascript:|\\", re.I)


def _filter_attribute(tag: str, attribute: str, value: str) -> str | None:
    if attribute != "style":
        return value
    # A second line behind the property allow-list: drop any declaration that could load a
    # resource or hide one behind CSS escapes.
    kept = [
        declaration.strip()
        for declaration in value.split(";")
        if declaration.strip() and not _UNSAFE_CSS.search(declaration)
    ]
    return ";".join(kept) or None


_cleaner = nh3.Cleaner(
    tags=_SANITIZE_TAGS,
    clean_content_tags=_SANITIZE_CONTENT_TAGS,
    attributes=_SANITIZE_ATTRIBUTES,
    tag_attribute_values=_SANITIZE_ATTRIBUTE_VALUES,
    attribute_filter=_filter_attribute,
    url_schemes={"http", "https", "mailto", "tel"},
    link_rel="noopener noreferrer",
    filter_style_properties=_SANITIZE_STYLE_PROPERTIES,
    strip_comments=True,
)


def sanitize_html(html: str) -> str:
    """Marketer HTML made safe to show inside the app (previews), by an allow-list.

    nh3 (Python binding of the Rust ammonia sanitiser) parses like a browser, removes scripts,
    event handlers, ``javascript:`` and ``data:`` URLs, forms and frames, keeps headings,
    paragraphs, links (given ``rel="noopener noreferrer"``), images, lists, tables and simple
    inline styles. Used for in-app previews and for public landing pages (see "Escaping").
    """
    return _cleaner.clean(html)
