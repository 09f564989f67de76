"""WordNet 3.0 database files in miniature, for tests of the attacker's gloss source."""

from __future__ import annotations

from pathlib import Path

from attacks.wordnet_glosses import DATA_FILES

HEADER = "  1 This software and database is being provided to you, the LICENSEE, by  \n"
# Real WordNet 3.0 lines (pointers shortened): w_cnt is hexadecimal, words use "_".
NOUN = (
    "13492453 22 n 09 hematopoiesis 0 haematopoiesis 0 hemopoiesis 0 haemopoiesis 0 "
    "hemogenesis 0 haematogenesis 0 hematogenesis 0 haemogenesis 0 sanguification 0 "
    "000 | the formation of blood cells in the living body (especially in the bone "
    "marrow)  \n"
    "04099969 06 n 02 stem_cell 0 precursor_cell 0 000 | an undifferentiated cell; "
    '"stem cells divide to renew themselves"; "a cell"  \n'
)
ADJ = '00003700 00 s 01 galore(ip) 0 000 | in great numbers; "apples galore"; "stocks galore"  \n'
VERB = "00001740 29 v 01 breathe 0 000 | draw air into, and expel out of, the lungs  \n"


def write_wordnet(root: Path, *, noun: str = NOUN) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    bodies = {"data.noun": noun, "data.verb": VERB, "data.adj": ADJ, "data.adv": ""}
    for name in DATA_FILES:
        (root / name).write_text(HEADER + bodies[name], encoding="utf-8")
    return root
