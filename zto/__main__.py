"""``python -m zto <command>``: zto's command line. Commands import what they need
only when run, so the dispatch itself loads nothing heavy.

    python -m zto doctor    check the configured setup against the real upstreams
"""

from __future__ import annotations

import sys

USAGE = """usage: python -m zto <command>

commands:
  doctor    check the configured setup (environment, .env.local, .env) against the
            real upstreams, step by step; exits 0 only if some upstream answers
            and REDIS_URL, when set, works
"""


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "doctor" and not rest:
        from .doctor import main as doctor

        return doctor()
    if command == "doctor" and rest[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0
    sys.stderr.write(f"zto: unknown command {' '.join(argv)!r}\n{USAGE}")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
