"""Case folding for search, the same in Python and in the search script."""

from __future__ import annotations


def _two_byte_capitals() -> dict[int, int]:
    """Capitals of U+00C0-U+04FF whose lower case is one character of two UTF-8 bytes."""
    found = {}
    for code in range(0xC0, 0x500):
        upper = chr(code)
        lower = upper.lower()
        if lower != upper and len(lower) == 1 and len(lower.encode()) == 2 == len(upper.encode()):
            found[code] = ord(lower)
    return found


_FOLD_MAP = {code: code + 32 for code in range(ord("A"), ord("Z") + 1)} | _two_byte_capitals()


def fold_case(text: str) -> str:
    """Lower ASCII, Latin, Greek and Cyrillic capitals: exactly what the search script folds."""
    return text.translate(_FOLD_MAP)


def lua_fold_table() -> str:
    """A Lua table mapping each two-byte UTF-8 capital (Latin, Greek, Cyrillic) to its
    lower case, so that scripts fold case beyond ASCII exactly as :func:`fold_case` does.
    """
    pairs = []
    for upper, lower in _two_byte_capitals().items():
        key = "".join(f"\\{b}" for b in chr(upper).encode())
        value = "".join(f"\\{b}" for b in chr(lower).encode())
        pairs.append(f'["{key}"]="{value}"')
    return "local FOLD = {" + ",".join(pairs) + "}\n"


def reads_same_in_json(text: str) -> bool:
    return not any(c in '"\\' or ord(c) < 0x20 for c in text)
