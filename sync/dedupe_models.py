"""Curated splink model specifications: which columns, compared how, blocked how.

A ``ModelSpec`` names the feature builder (record → columns), the comparisons (with
prior m/u probabilities so an untrained model is already sensible), the blocking rules
that keep comparisons near-linear, the blocking rules EM trains on, and the
deterministic rules that estimate the prior match rate.

Correlated evidence is modelled *jointly*, not as independent comparisons: for
accounts, name and domain form one comparison (a shared domain with a different name
is the parent/subsidiary case, its own level); street and postcode form one address
comparison. For contacts, the email key is compared exactly only (its user part
repeats the name, so no "same user part" level), and first and last names form one
comparison with nickname, initial, typo and swap levels.

splink comparison library: https://moj-analytical-services.github.io/splink/api_docs/comparison_library.html
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink.internals.comparison_creator import ComparisonCreator
from splink.internals.comparison_level_creator import ComparisonLevelCreator

from sync.dedupe_keys import (
    FeatureTable,
    account_feature_table,
    account_features,
    contact_feature_table,
    contact_features,
)

# Below this many records the curated priors are used as they are (EM on a handful of
# pairs overfits) and term-frequency adjustments are left out.
MIN_TRAIN_RECORDS = 2_000
# A first+last name shared by more records than this is not a blocking key on its own.
RARE_NAME_MAX = 10


@dataclass(frozen=True)
class Column:
    """One input column: its name and Arrow type (``"string"`` or ``"list<string>"``)."""

    name: str
    kind: str = "string"


@dataclass(frozen=True)
class ModelSpec:
    """Everything object-specific about matching one kind of record."""

    name: str
    features: Callable[[Mapping[str, Any]], dict[str, Any]]
    columns: tuple[Column, ...]
    # comparisons(tf): tf=False leaves out term-frequency adjustments (too few records
    # for frequencies to mean anything: every copy of a duplicate counts).
    comparisons: Callable[[bool], list[ComparisonCreator]]
    blocking_rules: tuple[str, ...]
    training_rules: tuple[str, ...]
    deterministic_rules: tuple[str, ...]
    # Recall assumed for ``deterministic_rules`` when estimating the prior match rate.
    deterministic_recall: float
    # Untrained prior: expected duplicate pairs per record.
    prior_pairs_per_record: float = 0.2
    # (column, max count): the column is blanked where its value is that common in the
    # input, so a blocking rule on it stays linear (common names make n² blocks).
    rare_only: tuple[tuple[str, int], ...] = ()
    # The same features built column-wise for a whole input (much faster at scale);
    # None: ``features`` is called record by record.
    feature_table: FeatureTable | None = None
    # comparison → the least Bayes factor any of its levels may weigh after training:
    # evidence that is only weakly against a match in real data (companies move, people
    # change numbers and titles) although the training data never showed it.
    min_bayes_factor: tuple[tuple[str, float], ...] = ()
    # (comparison, level label, odds): that level alone makes a pair at least ``odds``
    # times likelier a match than not (its Bayes factor >= odds / λ). For agreement on a
    # near-unique identifier the u sample can only bound from above (see
    # ``dedupe._debias_u``): the floor of u would otherwise keep it under the link.
    min_odds: tuple[tuple[str, str, float], ...] = ()
    # (group column, name column): two records whose names differ in one group (more
    # than a typo) are two entities, whatever links them (``dedupe.cluster_pairs``).
    identity: tuple[str, str] | None = None
    # (connection, input table, records) → {(comparison, level label): u}: u of levels
    # the random sample cannot see, estimated from the data after training (e.g. how
    # often two records of one name at one company are two people).
    estimate_u: Callable[[Any, str, int], Mapping[tuple[str, str], float]] | None = None


def _lvl(sql: str, label: str, m: float, u: float, *, tf: str | None = None, fixed: bool = False) -> cll.CustomLevel:
    """A level with prior m/u; ``fixed``: training never changes them (a rule, not a
    rate the data can show: e.g. a shared mailbox, whose pairs no sample holds)."""
    level = cll.CustomLevel(sql, label_for_charts=label)
    level.configure(m_probability=m, u_probability=u)
    if tf is not None:
        level.configure(tf_adjustment_column=tf)
    if fixed:
        level.configure(fix_m_probability=True, fix_u_probability=True)
    return level


def _null(sql: str) -> cll.CustomLevel:
    level = cll.CustomLevel(sql, label_for_charts="missing")
    level.configure(is_null_level=True)
    return level


def _else(m: float, u: float) -> ComparisonLevelCreator:
    level = cll.ElseLevel()
    level.configure(m_probability=m, u_probability=u, label_for_charts="different")
    return level


def _exact(col: str, m: float, u: float, *, tf: bool = False) -> cl.CustomComparison:
    return cl.CustomComparison(
        output_column_name=col,
        comparison_levels=[
            _null(f"{col}_l IS NULL OR {col}_r IS NULL"),
            _lvl(f"{col}_l = {col}_r", "exact", m, u, tf=col if tf else None),
            _else(1 - m, 1 - u),
        ],
    )


def _fuzzy(col: str, threshold: float, m: tuple[float, float], u: tuple[float, float], *, tf: bool = False) -> cl.CustomComparison:
    return cl.CustomComparison(
        output_column_name=col,
        comparison_levels=[
            _null(f"{col}_l IS NULL OR {col}_r IS NULL"),
            _lvl(f"{col}_l = {col}_r", "exact", m[0], u[0], tf=col if tf else None),
            _lvl(
                f"jaro_winkler_similarity({col}_l, {col}_r) >= {threshold}",
                f"similar (Jaro-Winkler >= {threshold})",
                m[1],
                u[1],
            ),
            _else(1 - sum(m), 1 - sum(u)),
        ],
    )


# --------------------------------------------------------------------------- contacts

_NICK = "len(list_intersect(first_forms_l, first_forms_r)) > 0"
# Two first names that cannot be one person's: both given, not equal, not a nickname
# pair, not an initial of the other, not a typo, not the names swapped.
_FIRST_DIFFER = (
    "first_name_l IS NOT NULL AND first_name_r IS NOT NULL AND first_name_l <> first_name_r"
    f" AND NOT {_NICK} AND length(first_name_l) > 1 AND length(first_name_r) > 1"
    " AND jaro_winkler_similarity(first_name_l, first_name_r) < 0.88"
    " AND NOT (first_name_l = last_name_r AND last_name_l = first_name_r)"
)
# One's company name is the other's work mail domain (one record has no company).
_FROM_DOMAIN = (
    "(company_l IS NULL AND email_org_l IS NOT NULL AND email_org_l = company_slug_r)"
    " OR (company_r IS NULL AND email_org_r IS NOT NULL AND email_org_r = company_slug_l)"
)
# One person's name (first and last, or a nickname of the first) at one company (the
# account's name, or the mail domain read as it); see contact_namesake_u.
_SAME_NAME = (
    "last_name_l = last_name_r AND first_name_l IS NOT NULL AND first_name_r IS NOT NULL"
    f" AND (first_name_l = first_name_r OR {_NICK})"
)
_SAME_NAME_COMPANY = (
    f"{_SAME_NAME} AND ((company_l IS NOT NULL AND company_l = company_r) OR {_FROM_DOMAIN})"
)
_TITLE_SAME = "jaro_winkler_similarity(title_l, title_r) >= 0.88"
NAMESAKE_LEVELS = {
    "same": "one name (or nickname), same company and title",
    "differ": "one name (or nickname), same company, titles differ",
    "missing": "one name (or nickname), same company, a title missing",
}
WEIGHED_WITH_NAME = "agrees, weighed with the name (same person name and company)"
# Prior share of namesakes among pairs of one name at one company, and its weight in
# pairs (a data set showing few such pairs keeps near it).
NAMESAKE_PRIOR = 0.01
NAMESAKE_PRIOR_WEIGHT = 20.0
_EXTENDS = "(starts_with(email_local_l, email_local_r) OR starts_with(email_local_r, email_local_l))"
_DIGITS_SAME = (
    "regexp_replace(email_local_l, '[^0-9]', '', 'g') = regexp_replace(email_local_r, '[^0-9]', '', 'g')"
)


def contact_email_comparison() -> cl.CustomComparison:
    """The email key, its user part and its domain, read with the first names.

    - one address, two first names: relatives sharing a personal mailbox, not one person;
    - the same user part at a personal or a mistyped domain (``jo.smith@acme.com`` /
      ``jo.smith@gmail.com`` or ``@acme.con``): for (at two company domains it is two
      employers: the company comparison speaks);
    - the same domain and a one-letter typo in the user part (not a number added:
      ``john.smith2@`` is the second John Smith's mailbox): for;
    - two different mailboxes at one company domain: two colleagues, strongly against;
    - otherwise a work and a personal address, two company domains, two personal
      addresses: what the data says.
    """
    return cl.CustomComparison(
        output_column_name="email",
        comparison_levels=[
            _null("email_l IS NULL OR email_r IS NULL"),
            _lvl(f"email_l = email_r AND {_FIRST_DIFFER}", "same address, first names differ (shared mailbox)",
                 0.002, 0.004, fixed=True),
            _lvl("email_l = email_r", "exact", 0.85, 1e-6),
            _lvl("email_local_l = email_local_r AND email_domain_l <> email_domain_r AND length(email_local_l) >= 4"
                 " AND (email_work_domain_l IS NULL OR email_work_domain_r IS NULL"
                 " OR jaro_winkler_similarity(email_domain_l, email_domain_r) >= 0.9)"
                 f" AND NOT ({_FIRST_DIFFER})", "same user part, personal or mistyped domain", 0.03, 2e-6),
            # two mailboxes at one domain whose user parts differ in separators only
            # (jo.smith / jo_smith) or where one extends the other at its end (matthew /
            # matthewr, jsmith / jsmith2): a naming scheme telling two people of one name
            # apart, rarely a slip. Fixed: random pairs never show it, so a trained u
            # would be the floor and the level would weigh *for* a match.
            _lvl("email_domain_l = email_domain_r AND email_local_l = email_local_r",
                 "same domain, user part differs in separators only", 1e-10, 1e-4, fixed=True),
            _lvl(f"email_domain_l = email_domain_r AND {_EXTENDS}",
                 "same domain, user part extends the other", 1e-10, 1e-4, fixed=True),
            _lvl(f"email_domain_l = email_domain_r AND damerau_levenshtein(email_local_l, email_local_r) <= 1"
                 f" AND length(email_local_l) = length(email_local_r) AND NOT ({_FIRST_DIFFER})",
                 "same domain, user part one typo apart", 0.02, 1e-5),
            _lvl(f"email_domain_l = email_domain_r AND damerau_levenshtein(email_local_l, email_local_r) <= 1"
                 f" AND {_DIGITS_SAME} AND NOT ({_FIRST_DIFFER})",
                 "same domain, user part one letter longer", 0.01, 1e-5),
            _lvl("email_work_domain_l = email_work_domain_r", "same company domain, other mailbox (colleagues)",
                 1e-9, 1e-3, fixed=True),
            # one name at one company and two addresses that neither are one nor tell
            # two people apart (a work and a personal one, one missing, two personal
            # ones): the name comparison weighs the pair, its u counting only the
            # namesakes the email cannot catch (see contact_namesake_u). m = u, and
            # small: the levels after it share what is left of u (``dedupe._debias_u``)
            _lvl(_SAME_NAME_COMPANY, WEIGHED_WITH_NAME, 1e-6, 1e-6, fixed=True),
            _lvl("(email_work_domain_l IS NULL) <> (email_work_domain_r IS NULL)",
                 "a work and a personal address", 0.05, 0.1),
            _lvl("email_work_domain_l IS NOT NULL AND email_work_domain_r IS NOT NULL",
                 "two company domains", 0.03, 0.8),
            _else(0.02, 1 - 1e-6 - 2e-6 - 2e-4 - 2e-5 - 1e-3 - 0.004 - 0.9),
        ],
    )


def contact_company_comparison(tf: bool = True) -> cl.CustomComparison:
    """The account's name; where one record has none, the other's company name read
    against this one's work mail domain (``Meridian Nova Co.`` / ``@meridiannova.io``):
    a marketing record often carries the address but not the company."""
    from_domain = _FROM_DOMAIN
    return cl.CustomComparison(
        output_column_name="company",
        comparison_levels=[
            _null(f"(company_l IS NULL OR company_r IS NULL) AND NOT ({from_domain})"),
            _lvl(_SAME_NAME_COMPANY, WEIGHED_WITH_NAME, 0.5, 0.5, fixed=True),
            _lvl("company_l = company_r", "exact", 0.85, 1e-3, tf="company" if tf else None),
            _lvl("jaro_winkler_similarity(company_l, company_r) >= 0.9", "similar (Jaro-Winkler >= 0.9)",
                 0.05, 1e-3),
            _lvl(from_domain, "one's company is the other's mail domain", 0.05, 1e-4),
            _else(0.1, 1 - 2e-3 - 1e-4),
        ],
    )


def contact_place_comparison() -> cl.CustomComparison:
    """Where the person works (city, state), read with the company.

    Weak evidence: people move and work remotely, and two colleagues share their
    company's city, so at one company a shared city tells nothing (a fixed neutral
    level); elsewhere (a company missing or different) the same city is for, the same
    state a little, another city a little against.
    """
    same_company = "company_l IS NOT NULL AND company_r IS NOT NULL AND company_l = company_r"
    # the state is not asked to agree: one system writes "OR", another "Oregon"
    same_city = "city_l = city_r"
    return cl.CustomComparison(
        output_column_name="place",
        comparison_levels=[
            _null("(city_l IS NULL OR city_r IS NULL) AND (state_l IS NULL OR state_r IS NULL)"),
            _lvl(f"{same_city} AND {same_company}", "same city, same company (tells nothing)", 0.05, 0.05,
                 fixed=True),
            _lvl(same_city, "same city", 0.6, 0.02),
            _lvl("state_l = state_r", "same state, city differs or missing", 0.15, 0.1),
            _else(0.2, 0.83),
        ],
    )


def contact_title_comparison() -> cl.CustomComparison:
    """The job title (exact, similar, different); neutral where name and company
    agree, since the name comparison weighs the title there (namesakes)."""
    return cl.CustomComparison(
        output_column_name="title",
        comparison_levels=[
            _null("title_l IS NULL OR title_r IS NULL"),
            _lvl(_SAME_NAME_COMPANY, WEIGHED_WITH_NAME, 0.5, 0.5, fixed=True),
            _lvl("title_l = title_r", "exact", 0.75, 0.04),
            _lvl("jaro_winkler_similarity(title_l, title_r) >= 0.88", "similar (Jaro-Winkler >= 0.88)", 0.05, 0.02),
            _else(0.2, 0.94),
        ],
    )


def contact_namesake_u(con: Any, table: str, n: int) -> dict[tuple[str, str], float]:
    """u of the "one name, same company" levels, from the data itself.

    Two records with one full name at one company are not always one person: people
    share names, more often than independent name and company agreement suggests
    (the random u sample almost never draws such a pair, so it cannot tell). The share
    of namesakes is read where it shows: pairs in which both records hold a mailbox
    at one company domain, and the mailboxes differ by more than a typo inside the
    user part (two people; ``jo.smith`` / ``jo_smith`` and ``jsmith`` / ``jsmith2`` are
    naming schemes, so they count as two). u = that share (with a weak prior of 1 %) x the record pairs
    of one name at one company the email comparison cannot tell apart (not two
    mailboxes at one company domain: those pairs it weighs itself, two colleagues
    strongly against, one address for), over all record pairs; per title state (same /
    different / a title missing), since namesakes often share a title too.

    Reading the namesake share only into the pairs the email leaves open is what
    keeps the two comparisons from counting one namesake twice: under independence
    the name level's u would also stand for the namesakes whose two work mailboxes
    already sank the pair, and a person's work and personal copies (or a copy without
    an address) would be taken for namesakes that often.
    """
    cols = "unique_id, first_name, first_forms, last_name, title, email, email_local, email_work_domain"
    side = ", ".join(f"{x}.{c.strip()} AS {c.strip()}_{x}" for x in ("l", "r") for c in cols.split(","))
    rows = con.execute(
        f"""
        WITH c AS (
            SELECT {side} FROM {table} AS l JOIN {table} AS r
              ON l.company = r.company AND l.last_name = r.last_name AND l.unique_id < r.unique_id
            UNION ALL
            SELECT {side} FROM {table} AS l JOIN {table} AS r
              ON l.company IS NULL AND r.company IS NOT NULL AND l.email_org = r.company_slug
             AND l.last_name = r.last_name
        ), p AS (
            SELECT
                CASE WHEN title_l IS NULL OR title_r IS NULL THEN 'missing'
                     WHEN {_TITLE_SAME} THEN 'same' ELSE 'differ' END AS state,
                email_work_domain_l IS NOT NULL AND email_work_domain_l = email_work_domain_r AS both_work,
                email_l <> email_r AND (email_local_l = email_local_r
                    OR starts_with(email_local_l, email_local_r) OR starts_with(email_local_r, email_local_l)
                    OR damerau_levenshtein(email_local_l, email_local_r) > 1) AS two_mailboxes
            FROM c WHERE {_SAME_NAME}
        )
        SELECT state, count(*), count(*) FILTER (WHERE both_work),
               count(*) FILTER (WHERE both_work AND two_mailboxes)
        FROM p GROUP BY state
        """
    ).fetchall()
    all_pairs = max(n * (n - 1) / 2, 1.0)
    out: dict[tuple[str, str], float] = {}
    for state, pairs, shown, two in rows:
        share = (float(two) + NAMESAKE_PRIOR * NAMESAKE_PRIOR_WEIGHT) / (float(shown) + NAMESAKE_PRIOR_WEIGHT)
        open_pairs = float(pairs) - float(shown) + 1.0  # (+1: never a level no pair may reach)
        out[("name", NAMESAKE_LEVELS[state])] = max(share * open_pairs / all_pairs, 1e-12)
    return out


def contact_comparisons(tf: bool = True) -> list[ComparisonCreator]:
    """Name (joint first/last), email key, phone, company, title, place (city/state)."""
    name = cl.CustomComparison(
        output_column_name="name",
        comparison_levels=[
            _null("last_name_l IS NULL OR last_name_r IS NULL"),
            # name, company and title read together (namesakes: see contact_namesake_u);
            # priors: the product of the separate levels' Bayes factors they replace
            _lvl(f"{_SAME_NAME_COMPANY} AND {_TITLE_SAME}", NAMESAKE_LEVELS["same"], 0.35, 6e-10),
            _lvl(f"{_SAME_NAME_COMPANY} AND title_l IS NOT NULL AND title_r IS NOT NULL",
                 NAMESAKE_LEVELS["differ"], 0.05, 8e-9),
            _lvl(_SAME_NAME_COMPANY, NAMESAKE_LEVELS["missing"], 0.2, 7e-9),
            _lvl("full_name_l = full_name_r", "first and last exact", 0.70, 2e-5, tf="full_name" if tf else None),
            _lvl(
                "first_name_l = last_name_r AND last_name_l = first_name_r",
                "first and last swapped",
                0.01,
                1e-7,
            ),
            _lvl(f"last_name_l = last_name_r AND {_NICK}", "last exact, nickname", 0.12, 1e-5),
            _lvl(
                "last_name_l = last_name_r AND jaro_winkler_similarity(first_name_l, first_name_r) >= 0.88",
                "last exact, first similar",
                0.04,
                2e-5,
            ),
            _lvl(
                "last_name_l = last_name_r AND (first_name_l IS NULL OR first_name_r IS NULL"
                " OR ((length(first_name_l) = 1 OR length(first_name_r) = 1)"
                " AND substr(first_name_l, 1, 1) = substr(first_name_r, 1, 1)))",
                "last exact, first initial or missing",
                0.03,
                2e-4,
            ),
            _lvl(
                "jaro_winkler_similarity(last_name_l, last_name_r) >= 0.9"
                f" AND (first_name_l = first_name_r OR {_NICK})",
                "last similar, first same",
                0.05,
                3e-5,
            ),
            _lvl("last_name_l = last_name_r", "last exact only", 0.02, 2e-3),
            _else(0.03, 0.99773),
        ],
    )
    return [
        name,
        contact_email_comparison(),
        _exact("phone", 0.70, 1e-5),
        contact_company_comparison(tf),
        contact_title_comparison(),
        contact_place_comparison(),
    ]


CONTACT_SPEC = ModelSpec(
    name="contact",
    features=contact_features,
    columns=(
        Column("unique_id"),
        Column("first_name"),
        Column("last_name"),
        Column("first_forms", "list<string>"),
        Column("first_block"),
        Column("full_name"),
        Column("name_block"),
        Column("email"),
        Column("email_local"),
        Column("email_domain"),
        Column("email_work_domain"),
        Column("phone"),
        Column("company"),
        Column("company_slug"),
        Column("email_org"),
        Column("title"),
        Column("city"),
        Column("state"),
    ),
    comparisons=contact_comparisons,
    blocking_rules=(
        "l.email = r.email",
        "l.phone = r.phone",
        # The name alone blocks only where it is rare (see rare_only).
        "l.name_block = r.name_block",
        "l.company = r.company AND l.last_name = r.last_name",
        "l.company = r.company AND l.first_block = r.first_block",
        "l.first_name = r.last_name AND l.last_name = r.first_name",
    ),
    # the email comparison reads the first names (a shared mailbox) and the name
    # comparison is blocked on in the name rule: the phone rule trains both
    training_rules=(
        "l.email = r.email",
        "l.first_block = r.first_block AND l.last_name = r.last_name",
        "l.phone = r.phone",
    ),
    deterministic_rules=(
        "l.email = r.email",
        "l.full_name = r.full_name AND l.company = r.company",
    ),
    deterministic_recall=0.9,
    rare_only=(("name_block", RARE_NAME_MAX),),
    feature_table=contact_feature_table,
    # people change titles, move and work from elsewhere
    min_bayes_factor=(("title", 0.3), ("place", 0.5)),
    # two mailboxes at one company domain are two people
    identity=("email_work_domain", "email_local"),
    estimate_u=contact_namesake_u,
)


# --------------------------------------------------------------------------- accounts


def account_comparisons(tf: bool = True) -> list[ComparisonCreator]:
    """Name and domain (joint), phone (exact or same block), address (street, postcode,
    city and state joint: companies move, most often within their city), industry,
    country."""
    jw = "jaro_winkler_similarity(name_l, name_r) >= 0.92"
    dom_eq = "domain_l = domain_r"
    dom_null = "(domain_l IS NULL OR domain_r IS NULL)"
    name_domain = cl.CustomComparison(
        output_column_name="name_domain",
        comparison_levels=[
            _null("(name_l IS NULL OR name_r IS NULL) AND " + dom_null),
            _lvl(f"name_l = name_r AND {dom_eq}", "name and domain exact", 0.60, 1e-7),
            _lvl(f"name_l = name_r AND {dom_null}", "name exact, domain missing", 0.22, 2e-6),
            _lvl(f"{jw} AND {dom_eq}", "name similar, domain exact", 0.06, 1e-7),
            _lvl(f"{jw} AND {dom_null}", "name similar, domain missing", 0.03, 3e-5),
            _lvl("name_l = name_r", "name exact, domain different", 0.02, 3e-6),
            _lvl(dom_eq, "domain exact, name different", 0.02, 5e-6),
            _else(0.05, 0.99996),
        ],
    )
    address = cl.CustomComparison(
        output_column_name="address",
        comparison_levels=[
            _null(
                "(street_l IS NULL OR street_r IS NULL) AND (postcode_l IS NULL OR postcode_r IS NULL)"
                " AND (city_l IS NULL OR city_r IS NULL)"
            ),
            _lvl("postcode_l = postcode_r AND street_l = street_r", "street and postcode exact", 0.75, 1e-5),
            _lvl("street_l = street_r", "street exact", 0.05, 1e-5),
            _lvl(
                "postcode_l = postcode_r AND jaro_winkler_similarity(street_l, street_r) >= 0.9",
                "postcode exact, street similar",
                0.08,
                1e-4,
            ),
            _lvl("postcode_l = postcode_r", "postcode exact only", 0.07, 2e-3),
            # (the state is not asked to agree: "OR" in one system is "Oregon" in another)
            _lvl("city_l = city_r", "same city, street and postcode differ or missing", 0.03, 0.02),
            _else(0.02, 0.97788),
        ],
    )
    # A company's numbers share their block (one switchboard, direct lines from one
    # range): a number differing only in its last four digits is weak evidence for.
    # (phone keys are the last 9 digits: see dedupe_keys.phone_key)
    block = "length(phone_l) >= 9 AND length(phone_l) = length(phone_r) AND left(phone_l, -4) = left(phone_r, -4)"
    phone = cl.CustomComparison(
        output_column_name="phone",
        comparison_levels=[
            _null("phone_l IS NULL OR phone_r IS NULL"),
            _lvl("phone_l = phone_r", "exact", 0.70, 1e-5),
            _lvl(block, "same number block (all but the last 4 digits)", 0.10, 1e-4),
            _else(0.20, 1 - 1e-5 - 1e-4),
        ],
    )
    return [
        name_domain,
        phone,
        address,
        _exact("industry", 0.80, 0.08),
        _exact("country", 0.95, 0.2),
    ]


ACCOUNT_SPEC = ModelSpec(
    name="account",
    features=account_features,
    columns=(
        Column("unique_id"),
        Column("name"),
        Column("domain"),
        Column("phone"),
        Column("street"),
        Column("postcode"),
        Column("city"),
        Column("state"),
        Column("industry"),
        Column("country"),
    ),
    comparisons=account_comparisons,
    blocking_rules=(
        "l.name = r.name",
        "l.domain = r.domain",
        "l.phone = r.phone",
        "l.postcode = r.postcode AND substr(l.name, 1, 3) = substr(r.name, 1, 3)",
    ),
    training_rules=("l.domain = r.domain", "l.phone = r.phone"),
    deterministic_rules=("l.name = r.name AND l.domain = r.domain",),
    deterministic_recall=0.7,
    prior_pairs_per_record=0.1,
    feature_table=account_feature_table,
    # companies move (street and postcode change) and change numbers
    min_bayes_factor=(("address", 0.3), ("phone", 0.3), ("industry", 0.3)),
    # one registrable domain and the same name, or names a typo apart: one company (a
    # subsidiary sharing the domain has another name: "domain exact, name different").
    # At 100k records the u sample's few such pairs are nearly all matches, and what
    # is left after removing them (λ·m) is noise that kept 15,000 true pairs in review.
    min_odds=(("name_domain", "name and domain exact", 1000.0), ("name_domain", "name similar, domain exact", 200.0)),
)

SPECS: dict[str, ModelSpec] = {"contact": CONTACT_SPEC, "account": ACCOUNT_SPEC}

