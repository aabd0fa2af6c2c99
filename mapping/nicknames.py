"""Common English given-name nicknames, for matching people (never for display).

``name_forms("Bob")`` → ``("robert",)``; an ambiguous nickname gives every formal name
it can stand for (``"Alex"`` → ``("alex", "alexander", "alexandra")``). Two first
names are nickname-equivalent when their forms intersect.
"""

from __future__ import annotations

import unicodedata
from functools import cache

# Formal name → the nicknames people go by. Hand-written, lowercase.
NICKNAMES: dict[str, tuple[str, ...]] = {
    "abigail": ("abby", "abbie", "gail"),
    "albert": ("al", "bert"),
    "alexander": ("alex", "al", "sandy", "xander"),
    "alexandra": ("alex", "lexi", "sandra", "sandy"),
    "alfred": ("al", "alf", "fred"),
    "andrew": ("andy", "drew"),
    "anthony": ("tony",),
    "arthur": ("art",),
    "barbara": ("barb", "babs"),
    "benjamin": ("ben", "benny", "benji"),
    "catherine": ("cathy", "kate", "katie", "cat"),
    "charles": ("charlie", "chuck", "chas"),
    "christina": ("chris", "tina", "christy"),
    "christine": ("chris", "chrissy", "tina"),
    "christopher": ("chris", "kit", "topher"),
    "cynthia": ("cindy",),
    "daniel": ("dan", "danny"),
    "david": ("dave", "davey"),
    "deborah": ("deb", "debbie", "debby"),
    "donald": ("don", "donny"),
    "dorothy": ("dot", "dottie"),
    "douglas": ("doug",),
    "edward": ("ed", "ted", "eddie", "ned"),
    "elizabeth": ("liz", "beth", "lizzie", "betty", "eliza", "betsy"),
    "eugene": ("gene",),
    "frederick": ("fred", "freddie", "freddy"),
    "gabriel": ("gabe",),
    "gregory": ("greg",),
    "henry": ("hank", "harry"),
    "jacqueline": ("jackie",),
    "james": ("jim", "jimmy", "jamie"),
    "jeffrey": ("jeff",),
    "jennifer": ("jen", "jenny", "jenn"),
    "jessica": ("jess", "jessie"),
    "john": ("jack", "johnny"),
    "jonathan": ("jon", "jonny"),
    "joseph": ("joe", "joey"),
    "joshua": ("josh",),
    "katherine": ("kate", "katie", "kathy", "kat"),
    "kathleen": ("kathy", "kate"),
    "kenneth": ("ken", "kenny"),
    "kimberly": ("kim",),
    "lawrence": ("larry",),
    "leonard": ("leo", "len", "lenny"),
    "margaret": ("maggie", "peggy", "meg", "marge"),
    "matthew": ("matt",),
    "michael": ("mike", "mikey", "mick"),
    "nathaniel": ("nate", "nat"),
    "nicholas": ("nick", "nicky"),
    "pamela": ("pam",),
    "patricia": ("pat", "trish", "patty", "tricia"),
    "patrick": ("pat", "paddy"),
    "peter": ("pete",),
    "philip": ("phil",),
    "raymond": ("ray",),
    "rebecca": ("becky", "becca"),
    "richard": ("rick", "dick", "rich", "richie"),
    "robert": ("bob", "rob", "bobby", "robbie", "bert"),
    "ronald": ("ron", "ronnie"),
    "samantha": ("sam", "sammy"),
    "samuel": ("sam", "sammy"),
    "stephanie": ("steph",),
    "stephen": ("steve", "stevie"),
    "steven": ("steve", "stevie"),
    "susan": ("sue", "susie", "suzy"),
    "theodore": ("ted", "teddy", "theo"),
    "thomas": ("tom", "tommy"),
    "timothy": ("tim", "timmy"),
    "victoria": ("vicky", "tori", "vickie"),
    "walter": ("walt",),
    "william": ("bill", "will", "billy", "willy", "liam"),
    "zachary": ("zach", "zack"),
}


def fold_name(name: str) -> str:
    """Casefold, strip accents and keep letters only: ``"  Zoë-Ann "`` → ``"zoeann"``."""
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(c for c in decomposed if c.isalpha() and not unicodedata.combining(c)).casefold()


def _build_index() -> dict[str, frozenset[str]]:
    index: dict[str, set[str]] = {}
    for formal, nicks in NICKNAMES.items():
        index.setdefault(formal, set()).add(formal)
        for nick in nicks:
            index.setdefault(nick, set()).add(formal)
    return {name: frozenset(forms) for name, forms in index.items()}


_INDEX = _build_index()


@cache
def name_forms(first_name: str) -> tuple[str, ...]:
    """The formal names ``first_name`` may stand for, sorted (itself when unknown).

    A nickname that is also a name in its own right keeps itself too (``"liam"``).
    """
    key = fold_name(first_name)
    if not key:
        return ()
    forms = set(_INDEX.get(key, ()))
    if key not in NICKNAMES:
        forms.add(key)
    return tuple(sorted(forms))


def same_person_name(a: str, b: str) -> bool:
    """True when two first names can be the same person's (equal, or nickname-related)."""
    return bool(set(name_forms(a)) & set(name_forms(b)))
