"""Make ``super_categories.csv``: each ImageNet-1k class's WordNet super-category.

ImageNet's wnids are WordNet 3.0 noun offsets (``n02084071`` is offset 02084071). Each class
goes to the first group in :data:`GROUPS` one of whose anchor synsets is among its hypernyms
(``@`` and instance ``@i`` pointers, followed to the root), so dogs are "dogs" before they are
"other mammals"; a class under none of them is "other objects". Reads WordNet's ``data.noun`` (Debian's ``wordnet-base``: ``apt-get install
wordnet-base``); WordNet's licence is in ``WORDNET_LICENSE`` beside the table.

    python data/super_categories/make_table.py [--wordnet /usr/share/wordnet/data.noun]
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

from dario_utils.data.imagenet import imagenet_class_names, imagenet_wnids

GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("dogs", ("02084071",)),  # dog, domestic dog
    ("other mammals", ("01861778",)),  # mammal
    ("birds", ("01503061",)),  # bird
    ("fish, reptiles and amphibians", ("02512053", "01661091", "01627424")),  # fish; reptile; amphibian
    ("invertebrates", ("01905661",)),  # invertebrate
    ("food and plants", ("00021265", "13134947", "07707451", "12992868", "00017222")),  # food; fruit; vegetable; fungus; plant
    ("vehicles", ("03100490",)),  # conveyance, transport
    ("clothing", ("03051540", "03380867")),  # clothing, apparel; footwear
    ("containers", ("03094503",)),  # container
    ("devices and tools", ("03183080", "03574816", "03563967", "03294048", "02729837")),  # device; instrument (musical
    # ones included); implement; equipment; appliance
    ("structures and places", ("04341686", "00027167", "09287968")),  # structure; location; geological formation
)
OTHER = "other objects"
"""The group of a class under none of the anchors (other artifacts, furniture, people, ...)."""
HYPERNYM_POINTERS = ("@", "@i")
TABLE = Path(__file__).with_name("super_categories.csv")


def read_hypernyms(data_noun: Path) -> dict[str, list[str]]:
    """Each noun synset's offset -> the offsets of its direct hypernyms."""
    hypernyms: dict[str, list[str]] = {}
    for line in data_noun.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith(" "):  # the licence header
            continue
        fields = line.split(" | ")[0].split()
        words = int(fields[3], 16)
        at = 4 + 2 * words
        pointers = int(fields[at])
        parents = []
        for k in range(pointers):
            symbol, offset, pos = fields[at + 1 + 4 * k: at + 4 + 4 * k]
            if symbol in HYPERNYM_POINTERS and pos == "n":
                parents.append(offset)
        hypernyms[fields[0]] = parents
    return hypernyms


def ancestors(offset: str, hypernyms: dict[str, list[str]]) -> set[str]:
    """``offset`` and every synset above it."""
    seen, todo = set(), [offset]
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(hypernyms.get(node, []))
    return seen


def group_of(wnid: str, hypernyms: dict[str, list[str]]) -> str:
    """The first of :data:`GROUPS` whose anchors include one of ``wnid``'s hypernyms."""
    above = ancestors(wnid[1:], hypernyms)
    return next((name for name, anchors in GROUPS if above & set(anchors)), OTHER)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet/data.noun"))
    args = parser.parse_args()
    if not args.wordnet.is_file():
        raise SystemExit(f"error: no WordNet noun database at {args.wordnet}: apt-get install wordnet-base")
    hypernyms = read_hypernyms(args.wordnet)
    with TABLE.open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["wnid", "class_name", "group"])
        for wnid, name in zip(imagenet_wnids(), imagenet_class_names()):
            writer.writerow([wnid, name, group_of(wnid, hypernyms)])
    print(f"wrote {TABLE}")


if __name__ == "__main__":
    main()
