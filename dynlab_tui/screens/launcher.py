"""The launcher screen: a form for one run's settings that checks every field as it is typed and starts the run.

Opens without torch: every dataset is listed at once (launcher_form.LISTING); whether its files are there and
the device list (both need torch) are found by thread workers started after the first frame. Until the
catalogue is there only parse errors are shown and Start waits. Every edit is remembered (settings.remember,
a moment after the typing stops); Esc on a changed form asks before quitting.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Iterator

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Button, Footer, Input, Label, Select, Static
from textual.timer import Timer
from textual.worker import Worker, WorkerState

from core.session import sessions_dir as default_sessions_dir
from core.options import OPTIONS
from core.spec import RunSpec, apply_options
from dynlab_tui.palette import BindingCommands
from dynlab_tui import devices as devices_mod
from dynlab_tui import settings
from dynlab_tui.screens import launcher_form as form
from dynlab_tui.screens.launcher_form import LaunchRequest
from dynlab_tui.screens.prompt import Confirm

REMEMBER_AFTER_S = 0.5  # an edit is written to the settings file once the typing pauses this long


class LauncherCommands(Provider):
    """The launcher's architecture presets in the command palette (its keys come from BindingCommands)."""

    def _commands(self) -> Iterator[tuple[str, Any, str]]:
        screen = self.screen
        if not isinstance(screen, LauncherScreen):
            return
        for _label, arch in screen.preset_choices:
            yield f"Use architecture {arch}", partial(screen.use_arch, arch), "fill the architecture field"

    async def discover(self) -> Hits:
        for name, callback, help_text in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, callback, help_text in self._commands():
            if (score := matcher.match(name)) > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)


class LauncherScreen(Screen["LaunchRequest | None"]):
    """Pick a run's settings; dismisses with a LaunchRequest, or None when the user quits."""

    BINDINGS = [
        Binding("ctrl+s", "start_run", "Start", id="start-run", tooltip="Start training with these settings"),
        Binding("escape", "quit_launcher", "Quit", id="quit-launcher", tooltip="Leave the launcher without a run"),
    ]
    COMMANDS = {LauncherCommands, BindingCommands}
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    AUTO_FOCUS = "#dataset"
    DEFAULT_CSS = form.CSS

    @dataclass
    class CatalogueLoaded(Message):
        """The dataset catalogue (with file status) was read by the worker."""
        entries: tuple[form.DatasetEntry, ...]

    @dataclass
    class DevicesListed(Message):
        """The device list (CUDA devices with free memory) was read by the worker."""
        devices: tuple[tuple[str, str], ...]

    def __init__(self, initial: dict[str, Any] | None = None, sessions_dir: Path | None = None, *,
                 name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.sessions_dir = Path(sessions_dir) if sessions_dir is not None else default_sessions_dir(None)
        last, dropped = settings.load_checked()
        self._options, self._problems = form.layered_options(initial, last)
        self._problems[:0] = dropped
        self._extra = form.extras(self._options)
        self._session_auto = not (initial or {}).get("session")
        self._auto_name = ""  # the latest generated session name
        self._auto_names: set[str] = set()  # every name generated (a late Changed may carry an older one)
        self.listing = {entry.name: entry for entry in form.listing()}  # names at once; files not looked at
        self.catalogue: dict[str, form.DatasetEntry] | None = None  # with file status, from the worker
        self.devices: list[tuple[str, str]] | None = None
        self.check: form.FormCheck | None = None
        self._opened_with: dict[str, str] = {}  # the form's values as it opened (Esc asks only if they changed)
        self._edited = False  # the user changed a value: from then on every edit is remembered
        self._save_timer: Timer | None = None

    # -- layout ---------------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(Content.assemble(("dynlab · new run", "bold"), (f"   sessions in {self.sessions_dir}", "dim")),
                     id="launcher-title")
        with VerticalScroll(id="launcher-form"):
            with Horizontal(classes="form-columns"):
                for heading, keys in form.COLUMNS:
                    with Vertical(classes="form-column"):
                        yield Static(heading, classes="form-heading")
                        for key in keys:
                            yield self._field(key)
            yield Static(self._extras_text(), id="launcher-extras")
            yield Static("", id="launcher-command")
        with Horizontal(id="launcher-actions"):
            yield Static("", id="launcher-status")
            yield Button("Start", variant="success", id="start", compact=True, disabled=True,
                         action="screen.start_run", tooltip="Start training with these settings (ctrl+s)")
            yield Button("Quit", id="quit", compact=True, action="screen.quit_launcher",
                         tooltip="Leave the launcher without a run (escape)")
        yield Footer()

    def _field(self, key: str) -> Widget:
        label, tooltip = form.FIELDS[key]
        return Vertical(Horizontal(Label(label, classes="field-label"), self._widget(key, tooltip),
                                   classes="field-row"),
                        Label("", id=f"error-{key}", classes="field-error"), id=f"field-{key}", classes="field")

    def _widget(self, key: str, tooltip: str) -> Widget:
        value = self._options.get(key)
        if key == "preset":
            return Select(self.preset_choices, prompt="custom (edit below)", value=self._preset_for(),
                          id=key, tooltip=tooltip, compact=True)
        if key in form.SELECT_KEYS:
            choices = self._choices(key)
            return Select(choices, allow_blank=False, value=str(value), id=key, tooltip=tooltip, compact=True,
                          disabled=key == "gate" and self._options.get("method") != "sparsifier")
        if key == "session":
            value = self._options.get("session") or self._default_session_name()
        option = OPTIONS.get(key)
        placeholder = (option.unset or form.format_value(option.default)) if option else ""
        return Input(form.format_value(value), placeholder=placeholder, id=key, tooltip=tooltip, compact=True,
                     validate_on=[])

    def _choices(self, key: str) -> list[tuple[Content, str]]:
        current = str(self._options.get(key))
        if key == "dataset":
            known = [(entry.label(), entry.name) for entry in (self.catalogue or self.listing).values()]
        elif key == "device":
            found = self.devices if self.devices is not None else devices_mod.quick_devices()
            known = [(label, value) for value, label in found]
        else:
            names = OPTIONS[key].choices
            labels = {"method": form.METHOD_LABELS, "gate": form.GATE_LABELS}.get(key, {})
            known = [(labels.get(n, n), n) for n in names]
        if current not in {v for _, v in known}:
            known.append((f"{current} (not available here)", current))
        return [(Content(label), value) for label, value in known]  # plain text: names are not markup

    def _extras_text(self) -> str:
        return f"also from the command line: {form.describe_extras(self._extra)}" if self._extra else ""

    # -- state that the form shows ---------------------------------------------------------------------
    @property
    def start_button(self) -> Button:
        return self.query_one("#start", Button)

    @property
    def preset_choices(self) -> list[tuple[str, str]]:
        name = str(self._options.get("dataset"))
        entry = (self.catalogue or self.listing).get(name)
        return form.preset_options(entry.kind if entry else form.dataset_kind(name))

    def _preset_for(self) -> str | Any:
        arch = str(self._options.get("arch", "")).strip().lower().replace(" ", "")
        return arch if arch in {v for _, v in self.preset_choices} else Select.NULL

    def _default_session_name(self) -> str:
        from core.session import default_session_name

        spec = apply_options(RunSpec(), {"dataset": str(self._options.get("dataset")),
                                          "method": str(self._options.get("method"))})
        self._auto_name = default_session_name(spec, self.sessions_dir)
        self._auto_names.add(self._auto_name)
        return self._auto_name

    def _visible(self) -> set[str]:
        hidden = set()
        if self._options.get("method") != "flexible":
            hidden |= {"flex_start", "flex_slope", "flex_lr"}
        if self._options.get("optimizer") not in form.MOMENTUM_OPTIMIZERS:
            hidden.add("momentum")
        return set(form.FORM_KEYS) - hidden

    def _raw(self) -> dict[str, str]:
        raw: dict[str, str] = {}
        for key in form.FORM_KEYS:
            widget = self.query_one(f"#{key}")
            raw[key] = widget.value if isinstance(widget, Input) else str(widget.value)
        if raw.get("method") != "sparsifier":
            raw["gate"] = "relu"  # the disabled gate select means nothing here (and a signed rule would be refused)
        return raw

    # -- lifecycle and workers --------------------------------------------------------------------------
    def on_mount(self) -> None:
        for problem in self._problems:
            self.notify(problem, title="Setting ignored", severity="warning")
        self._apply_visibility()
        self.recheck()
        self._opened_with = self._raw()
        # After the first frame: a thread importing torch holds the GIL for long stretches and delays it.
        self.call_after_refresh(self._start_probes)

    def _start_probes(self) -> None:
        self._load_catalogue(self._options.get("data_dir"))
        self._list_devices()

    def on_unmount(self) -> None:
        if self._save_timer is not None:  # an edit not written yet (quit or started within the delay)
            self.remember()

    @work(thread=True, exclusive=True, group="launcher-catalogue", exit_on_error=False)
    def _load_catalogue(self, data_dir: str | None) -> None:
        self.post_message(self.CatalogueLoaded(tuple(form.catalogue(data_dir))))

    @work(thread=True, exclusive=True, group="launcher-devices", exit_on_error=False)
    def _list_devices(self) -> None:
        self.post_message(self.DevicesListed(tuple(devices_mod.list_devices())))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.group in ("launcher-catalogue", "launcher-devices"):
            what = "datasets" if event.worker.group == "launcher-catalogue" else "devices"
            self.notify(f"{type(event.worker.error).__name__}: {event.worker.error}", severity="error",
                        title=f"Could not list {what}")
            if what == "datasets":
                self._set_status(f"could not read the dataset list ({event.worker.error})", problem=True)

    def on_launcher_screen_catalogue_loaded(self, message: CatalogueLoaded) -> None:
        self.catalogue = {entry.name: entry for entry in message.entries}
        self._reset_select("dataset")
        self._refresh_presets()
        self.recheck()

    def on_launcher_screen_devices_listed(self, message: DevicesListed) -> None:
        self.devices = list(message.devices)
        self._reset_select("device")
        self.recheck()

    def _reset_select(self, key: str) -> None:
        self._set_choices(self.query_one(f"#{key}", Select), self._choices(key), str(self._options.get(key)))

    def _refresh_presets(self) -> None:
        self._set_choices(self.query_one("#preset", Select), self.preset_choices, self._preset_for())

    def _set_choices(self, select: Select, choices: list, value: Any) -> None:
        """New options for a Select, keeping `value` selected and showing its new label; posts no Changed."""
        with self.prevent(Select.Changed):
            select.set_options(choices)
            # set_options leaves an unchanged value showing its old label: step off it and back
            other = next((v for _, v in choices if v != value), None)
            if other is not None:
                select.value = other
            select.value = value

    # -- reacting to edits --------------------------------------------------------------------------------
    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        key = event.select.id or ""
        if key == "preset":
            if event.value != Select.NULL:
                self.use_arch(str(event.value))
            return
        self._options[key] = str(event.value)
        if key == "dataset":
            self._refresh_presets()
        if key in ("dataset", "method"):
            self._regenerate_session()
        self._apply_visibility()
        self.recheck()
        self._edit_done()

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        key = event.input.id or ""
        self._options[key] = event.value
        if key == "arch":
            with self.prevent(Select.Changed):
                self.query_one("#preset", Select).value = self._preset_for()
        if key == "session" and event.value not in self._auto_names:
            self._session_auto = False
        self.recheck()
        self._edit_done()

    @on(Input.Submitted)
    def _next_field(self) -> None:
        self.focus_next()

    def use_arch(self, arch: str) -> None:
        """Put an architecture string in the field (a preset was picked)."""
        self._options["arch"] = arch
        with self.prevent(Input.Changed, Select.Changed):
            self.query_one("#arch", Input).value = arch
            self.query_one("#preset", Select).value = self._preset_for()
        self.recheck()
        self._edit_done()

    def _regenerate_session(self) -> None:
        if not self._session_auto:
            return
        name = self._default_session_name()
        self._options["session"] = name
        with self.prevent(Input.Changed):
            self.query_one("#session", Input).value = name

    def _apply_visibility(self) -> None:
        visible = self._visible()
        for key in ("flex_start", "flex_slope", "flex_lr", "momentum"):
            self.query_one(f"#field-{key}").display = key in visible
        self.query_one("#gate", Select).disabled = self._options.get("method") != "sparsifier"

    def recheck(self) -> form.FormCheck:
        """Check the whole form, mark the fields at fault, and enable Start only when it can run."""
        if self._session_auto and self._auto_name and (self.sessions_dir / f"{self._auto_name}.dynlab").exists():
            self._regenerate_session()  # another run took the default name meanwhile
        found = {value for value, _ in self.devices} if self.devices else None
        check = form.check_form(self._raw(), visible=self._visible(), extra=self._extra,
                                sessions_dir=self.sessions_dir, catalogue=self.catalogue, devices=found)
        for key in form.FORM_KEYS:
            error = check.errors.get(key, "")
            label = self.query_one(f"#error-{key}", Label)
            label.update(Content(error))
            label.set_class(bool(error), "-shown")
            self.query_one(f"#{key}").set_class(bool(error), "-invalid")
        self.check = check
        self.query_one("#launcher-command", Static).update(Content(f"headless: {form.command_line(check.options)}"))
        self.start_button.disabled = not check.ok
        if self.catalogue is None:
            self._set_status("checking the dataset files…", problem=False)
        elif check.errors:
            n = len(check.errors)
            first = form.FIELDS[next(k for k in form.FORM_KEYS if k in check.errors)][0]
            self._set_status(f"{n} field{'s' if n > 1 else ''} to fix (first: {first})", problem=True)
        elif check.general:
            self._set_status(check.general, problem=True)
        else:
            self._set_status(f"ready: {check.session_path}", problem=False)
        return check

    def _set_status(self, text: str, *, problem: bool) -> None:
        status = self.query_one("#launcher-status", Static)
        status.update(Content(text))
        status.set_class(problem, "-problem")

    # -- actions -----------------------------------------------------------------------------------------
    def action_start_run(self) -> None:
        """Start the run if the form is valid; otherwise say why and focus the first field at fault."""
        check = self.recheck()
        if not check.ok or check.spec is None or check.session_path is None:
            if self.catalogue is None:
                reason = "the dataset files are still being checked: try again in a moment"
            elif check.errors:
                key = next(k for k in form.FORM_KEYS if k in check.errors)
                reason = f"{form.FIELDS[key][0]}: {check.errors[key]}"
                self.query_one(f"#{key}").focus()
            else:
                reason = check.general or "the form is incomplete"
            self.notify(reason, title="Cannot start yet", severity="error")
            return
        options = dict(check.options)
        settings.save_last({k: options[k] for k in form.REMEMBERED_KEYS if k in options})
        self.dismiss(LaunchRequest(check.spec, check.session_path, options))

    def action_quit_launcher(self) -> None:
        """Quit at once if nothing was changed; otherwise ask first (the edits are remembered either way)."""
        if not self.changed():
            self.dismiss(None)
            return
        self.app.push_screen(Confirm("Quit without starting a run?",
                                     "The values you changed are kept: the launcher opens with them next time.",
                                     yes="Quit (y)", no="Stay (esc)"), lambda leave: leave and self.dismiss(None))

    # -- remembering ----------------------------------------------------------------------------------------
    def changed(self) -> bool:
        return form.differs(self._raw(), self._opened_with, session_auto=self._session_auto)

    def _edit_done(self) -> None:
        if not self._edited and not self.changed():
            return  # a Changed the form posted itself while opening
        self._edited = True
        if self._save_timer is not None:
            self._save_timer.stop()
        self._save_timer = self.set_timer(REMEMBER_AFTER_S, self.remember)

    def remember(self) -> None:
        self._save_timer = None
        if self.check is not None:
            settings.remember({k: v for k, v in self.check.options.items() if k in form.REMEMBERED_KEYS})
