"""Replace one '## ' section of a Markdown file, keeping every other section as it is.

The benchmark scripts each own a section of docs/benchmarks.md; none may drop another's.
"""
import os


def replace_section(path, title, section):
    """Writes `section` (starting with '## {title}') in place of the section of that title
    in `path`, or appends it; the other sections are left untouched."""
    text = open(path).read() if os.path.exists(path) else ""
    marker = f"\n## {title}\n"
    if marker in text:
        head, rest = text.split(marker, 1)
        nxt = rest.find("\n## ")
        tail = rest[nxt:] if nxt >= 0 else ""
    else:
        head, tail = text, ""
    with open(path, "w") as f:
        f.write(head.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n" + tail)


def publish(section, path=None):
    """Prints a benchmark script's section and, given a Markdown file, writes it there
    in place of the section of the same title (its first line, '## title')."""
    print(section)
    if path:
        title = section.split("\n", 1)[0].removeprefix("## ").strip()
        replace_section(path, title, section)


def side(d):
    """`d` dB as the distance above or below what it is measured against."""
    if round(d, 2) == 0:
        return "level with"
    return f"{abs(d):.2f} dB {'above' if d > 0 else 'below'}"
