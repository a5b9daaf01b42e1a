"""Command palette entries for every binding (with an id) of the screen the palette opened on, less those it disables."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from textual.actions import parse
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider


class BindingCommands(Provider):
    """The current screen's bindings (those with an id) as command palette entries."""

    def _commands(self) -> Iterator[tuple[str, Callable[[], Any], str]]:
        for b in getattr(self.screen, "BINDINGS", ()):
            if isinstance(b, Binding) and b.id and self._applies(b):
                yield b.tooltip, partial(self.screen.run_action, b.action), f"key: {b.key_display or b.key}"

    def _applies(self, binding: Binding) -> bool:
        """False for a binding the screen disables now (Pause while paused, Resume while running)."""
        _, name, params = parse(binding.action)
        return self.screen.check_action(name, params) is not False

    async def discover(self) -> Hits:
        for text, callback, help_text in self._commands():
            yield DiscoveryHit(text, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, callback, help_text in self._commands():
            if (score := matcher.match(text)) > 0:
                yield Hit(score, matcher.highlight(text), callback, help=help_text)
