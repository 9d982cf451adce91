"""The window's actions in one table: the source of the menus, the keys and the F1 help.

Each :class:`ActionSpec` names an action, its menu text, its keys and a line of help. The
main window makes one ``QAction`` per spec and lays out the menus from :data:`MENUS`; the
review table handles the keys of the specs whose scope is ``"table"`` (they act only while
the table has the focus, so typing in the label field never triggers them); the F1 help
lists every spec by group. A test checks that the user guide names every key.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.label_score import LIKELY_ERROR_THRESHOLD


@dataclass(frozen=True)
class ActionSpec:
    """One action of the window.

    Attributes:
        name: Its id: the window's ``QAction`` is ``act_<name>``.
        text: The menu text.
        keys: Key sequences in Qt's portable text (``"Ctrl+O"``); the first is shown in menus.
        help: One line for the F1 help and the tool tip.
        group: The F1 help section it is listed under ("" for not listed).
        scope: ``"window"``: its keys work anywhere in the window; ``"table"``: they are the
            review table's keys (shown in the menu, handled by the table while it has the
            focus); ``"help"``: listed in the help only (keys of other widgets, mouse gestures).
        checkable: A toggle (the quick filters).
    """

    name: str
    text: str
    keys: tuple[str, ...] = ()
    help: str = ""
    group: str = ""
    scope: str = "window"
    checkable: bool = False

    @property
    def keys_text(self) -> str:
        """The keys as the help and the user guide show them."""
        return " / ".join(map(shown_key, self.keys))


def shown_key(key: str) -> str:
    """A key as people read it: Enter for Return, arrows for Down and Up."""
    return key.replace("Return", "Enter").replace("Down", "↓").replace("Up", "↑")


#: The quick filters: (name as the review table knows it, menu text, short chip text, tip).
QUICK_FILTER_ACTIONS = (
    ("likely", "Likely label errors", "Likely errors",
     f"Only samples whose label score is at or below {LIKELY_ERROR_THRESHOLD}: the model confidently reads another "
     "character than the label has"),
    ("duplicates", "Same picture, other label", "Same picture",
     "Only crops that are (nearly) the same picture as another crop with a different label: one of the labels is "
     "wrong for certain"),
    ("mismatches", "Mismatches", "Mismatches", "Only samples whose prediction differs from the label (or that have a "
                                               "problem)"),
    ("unreviewed", "Unreviewed", "Unreviewed", "Only samples not yet verified or fixed"),
    ("invalid", "Invalid labels", "Invalid", "Only file names that are not a valid plate"),
    ("unreadable", "Unreadable", "Unreadable", "Only images that cannot be read"),
)  # fmt: skip

ACTIONS: tuple[ActionSpec, ...] = (
    # Review: the table's keys
    ActionSpec("next", "Next Sample", ("J", "Down"), "next sample", "Review", "table"),
    ActionSpec("prev", "Previous Sample", ("K", "Up"), "previous sample", "Review", "table"),
    ActionSpec("accept", "Accept Prediction (of Every Selected Row)", ("Return",),
               "accept the prediction: rename the file to it, mark fixed, go to the next", "Review", "table"),
    ActionSpec("verify", "Label Is Right (Verify Every Selected Row)", ("Space",),
               "the label is right: mark verified, go to the next", "Review", "table"),
    ActionSpec("edit", "Edit Label…", ("E", "F2"), "type a label (Enter applies, Esc returns to the table)",
               "Review", "table"),
    ActionSpec("unreadable", "Mark Unreadable", ("X",), "mark the crop unreadable (no plate can be read from it)",
               "Review", "table"),
    ActionSpec("pick_province", "", ("Ctrl+P",), "in the label field: pick the province by pinyin (wan → 皖), Enter "
               "picks", "Review", "help"),
    ActionSpec("select_many", "", ("Shift+Down", "Shift+click", "Ctrl+click"),
               "select many rows: Enter accepts every prediction, Space verifies every label (one undo step)",
               "Review", "help"),
    ActionSpec("undo", "Undo", ("Ctrl+Z",), "undo the last change (renames are undone on disk)", "Review"),
    ActionSpec("redo", "Redo", ("Ctrl+Shift+Z", "Ctrl+Y"), "redo the last undone change", "Review"),
    # Browse
    ActionSpec("find", "Filter…", ("Ctrl+F",), "filter by file name, label or prediction", "Browse"),
    *(ActionSpec(f"quick_{name}", text, (f"Alt+{i}",), tip, "Browse", checkable=True)
      for i, (name, text, _chip, tip) in enumerate(QUICK_FILTER_ACTIONS, start=1)),
    ActionSpec("confusions", "Confusions…", ("Ctrl+M",),
               "the confusion matrix: which characters are read as which; a cell filters the table", "Browse"),
    ActionSpec("fit", "Zoom to Fit", ("Ctrl+0",), "image: fit the view", "Browse"),
    ActionSpec("one", "Actual Pixels", ("Ctrl+1",), "image: actual pixels", "Browse"),
    # Files
    ActionSpec("open", "Open Folder…", ("Ctrl+O",), "open a dataset folder (or drop a folder on the window)",
               "Files"),
    ActionSpec("sample", "Open Sample Folder", (), "open the bundled sample folder"),
    ActionSpec("export", "Export Corrected Dataset…", ("Ctrl+E",),
               "write the folder's current labels to a new folder (train/test split, manifest, PaddleOCR lists)",
               "Files"),
    ActionSpec("quit", "Quit", ("Ctrl+Q",), "quit", "Files"),
    # Model
    ActionSpec("model", "Open Checkpoint…", (), "predict with another model"),
    ActionSpec("default_model", "Use Bundled Model", (), "predict with the bundled model"),
    ActionSpec("previous_model", "Use Previous Model", (), "go back to the model used before the last switch"),
    ActionSpec("views", "Read Shifted and Zoomed Views", (),
               "read each crop three times (as it is, and shifted by 2 % of its width either way) and average, "
               "and zoomed in where that read is unsure, and light plates (yellow) also as their negative, showing "
               "the surer read: fewer misreads, loose crops and yellow plates from other cameras above all; off, "
               "each crop is read once",
               checkable=True),
    ActionSpec("second", "Second Opinion…", (),
               "also read the folder with a second model: the label score then combines both readers"),
    ActionSpec("no_second", "No Second Opinion", (), "read with one model only"),
    ActionSpec("rerun", "Predict Again", ("Ctrl+R",), "predict again (only changed or new files are predicted)",
               "Model"),
    ActionSpec("cancel", "Cancel", ("Esc",), "cancel the running prediction", "Model"),
    ActionSpec("train", "Train Panel", ("Ctrl+T",),
               "show or hide the Train panel (fine-tuning, cross-validated scores)", "Model"),
    # Help
    ActionSpec("help", "Keyboard Shortcuts", ("F1",), "this help", "Help"),
    ActionSpec("about", "About Plate Review", ()),
)  # fmt: skip

#: The menus: (title, action names; None is a separator, "recent" the Open Recent submenu).
MENUS: tuple[tuple[str, tuple[str | None, ...]], ...] = (
    ("&File", ("open", "recent", "sample", None, "export", None, "quit")),
    ("&Edit", ("undo", "redo", None, "accept", "verify", "edit", "unreadable", None,
               "next", "prev", None, "find")),
    ("&View", (*(f"quick_{q[0]}" for q in QUICK_FILTER_ACTIONS), None, "confusions", None, "fit", "one", None,
               "train")),
    ("&Model", ("model", "default_model", "previous_model", None, "views", None, "second",
                "no_second", None, "rerun", "cancel")),
    ("&Help", ("help", "about")),
)  # fmt: skip

#: The F1 help's sections, in order.
HELP_GROUPS = ("Review", "Browse", "Files", "Model", "Help")

BY_NAME = {a.name: a for a in ACTIONS}


def table_keys() -> dict[str, str]:
    """The review table's keys: ``{portable key text: action name}`` (``"Return"`` also answers Enter)."""
    out = {k: a.name for a in ACTIONS if a.scope == "table" for k in a.keys if k not in ("Down", "Up")}
    out["Enter"] = "accept"  # the keypad's Enter
    return out
