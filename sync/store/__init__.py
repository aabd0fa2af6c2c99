"""The local SQL store (SQLAlchemy 2.x): the only code that talks SQL.

Split by concern; every name is re-exported here, so ``from sync import store as st``
and ``st.X`` work as before. Everything is portable SQLAlchemy: the same code runs on
SQLite (the embedded default) and PostgreSQL. Functions other than ``Store``'s take
an open Session: the caller decides the transaction.

- ``tables``: the ORM tables; ``db``: engines, sessions, ``Store``;
- ``identity``: entities, the identity map, linking keys, dirty flags, search;
- ``decisions``: field provenance; ``outbox``: planned writes and the error ledger;
- ``runs``: cursors, runs, leases, API usage; ``matching``: tier-2 tables, merge ledger.
"""

from __future__ import annotations

from sync.store.db import (
    Store as Store,
)
from sync.store.db import (
    _sqlite_pragmas as _sqlite_pragmas,
)
from sync.store.db import (
    make_engine as make_engine,
)
from sync.store.decisions import (
    _PROVENANCE_KEY as _PROVENANCE_KEY,
)
from sync.store.decisions import (
    insert_provenance as insert_provenance,
)
from sync.store.decisions import (
    provenance as provenance,
)
from sync.store.decisions import (
    provenance_for as provenance_for,
)
from sync.store.decisions import (
    upsert_provenance as upsert_provenance,
)
from sync.store.identity import (
    MIN_ID_PREFIX as MIN_ID_PREFIX,
)
from sync.store.identity import (
    SEARCH_COLUMNS as SEARCH_COLUMNS,
)
from sync.store.identity import (
    AmbiguousEntity as AmbiguousEntity,
)
from sync.store.identity import (
    EntityValues as EntityValues,
)
from sync.store.identity import (
    _follow_merges as _follow_merges,
)
from sync.store.identity import (
    account_candidates_by_domain as account_candidates_by_domain,
)
from sync.store.identity import (
    accounts_by_domain as accounts_by_domain,
)
from sync.store.identity import (
    add_entity as add_entity,
)
from sync.store.identity import (
    contacts_by_email_key as contacts_by_email_key,
)
from sync.store.identity import (
    count_dirty as count_dirty,
)
from sync.store.identity import (
    current_entity as current_entity,
)
from sync.store.identity import (
    dirty_entities as dirty_entities,
)
from sync.store.identity import (
    entity_counts as entity_counts,
)
from sync.store.identity import (
    entity_is_unanchored_since as entity_is_unanchored_since,
)
from sync.store.identity import (
    entity_row as entity_row,
)
from sync.store.identity import (
    entity_values as entity_values,
)
from sync.store.identity import (
    find_entity as find_entity,
)
from sync.store.identity import (
    live_entity_ids as live_entity_ids,
)
from sync.store.identity import (
    mark_dirty as mark_dirty,
)
from sync.store.identity import (
    opportunities_by_account as opportunities_by_account,
)
from sync.store.identity import (
    opportunity_contacts as opportunity_contacts,
)
from sync.store.identity import (
    ref_rows_by_remote_id as ref_rows_by_remote_id,
)
from sync.store.identity import (
    ref_rows_for_entities as ref_rows_for_entities,
)
from sync.store.identity import (
    refs_by_remote_id as refs_by_remote_id,
)
from sync.store.identity import (
    refs_for_entities as refs_for_entities,
)
from sync.store.identity import (
    refs_for_remote_ids_any_system as refs_for_remote_ids_any_system,
)
from sync.store.identity import (
    remote_ids_for as remote_ids_for,
)
from sync.store.identity import (
    rename_entity as rename_entity,
)
from sync.store.identity import (
    replace_opportunity_contacts as replace_opportunity_contacts,
)
from sync.store.identity import (
    resolve_entity_ids as resolve_entity_ids,
)
from sync.store.identity import (
    search_entities as search_entities,
)
from sync.store.identity import (
    set_opportunity_contacts as set_opportunity_contacts,
)
from sync.store.identity import (
    write_entity_values as write_entity_values,
)
from sync.store.identity import (
    write_ref_rows as write_ref_rows,
)
from sync.store.matching import (
    MATCH_FIELDS as MATCH_FIELDS,
)
from sync.store.matching import (
    _account_merges as _account_merges,
)
from sync.store.matching import (
    _image as _image,
)
from sync.store.matching import (
    _live_account as _live_account,
)
from sync.store.matching import (
    _mark_dependents_dirty as _mark_dependents_dirty,
)
from sync.store.matching import (
    add_review_pairs as add_review_pairs,
)
from sync.store.matching import (
    decided_pairs as decided_pairs,
)
from sync.store.matching import (
    dedupe_records as dedupe_records,
)
from sync.store.matching import (
    entity_ids_created_since as entity_ids_created_since,
)
from sync.store.matching import (
    get_match_model as get_match_model,
)
from sync.store.matching import (
    link_entities as link_entities,
)
from sync.store.matching import (
    match_training_records as match_training_records,
)
from sync.store.matching import (
    merge_entries_for as merge_entries_for,
)
from sync.store.matching import (
    merges as merges,
)
from sync.store.matching import (
    opportunities_of_accounts_linked_since as opportunities_of_accounts_linked_since,
)
from sync.store.matching import (
    opportunity_match_records as opportunity_match_records,
)
from sync.store.matching import (
    opportunity_record_copies as opportunity_record_copies,
)
from sync.store.matching import (
    remote_merge_pairs as remote_merge_pairs,
)
from sync.store.matching import (
    review_rows as review_rows,
)
from sync.store.matching import (
    save_match_model as save_match_model,
)
from sync.store.matching import (
    set_matched_until as set_matched_until,
)
from sync.store.matching import (
    undo_link as undo_link,
)
from sync.store.outbox import (
    BAD_VALUE as BAD_VALUE,
)
from sync.store.outbox import (
    RETRY_BASE as RETRY_BASE,
)
from sync.store.outbox import (
    RETRY_CAP as RETRY_CAP,
)
from sync.store.outbox import (
    RETRY_MAX_DELAY as RETRY_MAX_DELAY,
)
from sync.store.outbox import (
    count_due_write_retries as count_due_write_retries,
)
from sync.store.outbox import (
    delete_outbox_rows as delete_outbox_rows,
)
from sync.store.outbox import (
    delete_pending_ops as delete_pending_ops,
)
from sync.store.outbox import (
    drop_pending_ops as drop_pending_ops,
)
from sync.store.outbox import (
    due_write_retries as due_write_retries,
)
from sync.store.outbox import (
    insert_outbox as insert_outbox,
)
from sync.store.outbox import (
    list_errors as list_errors,
)
from sync.store.outbox import (
    list_pending as list_pending,
)
from sync.store.outbox import (
    outbox_rows as outbox_rows,
)
from sync.store.outbox import (
    pending_counts as pending_counts,
)
from sync.store.outbox import (
    pending_create_ids as pending_create_ids,
)
from sync.store.outbox import (
    pending_ops as pending_ops,
)
from sync.store.outbox import (
    pending_payloads_for_remote as pending_payloads_for_remote,
)
from sync.store.outbox import (
    record_error as record_error,
)
from sync.store.outbox import (
    reopen_write_errors as reopen_write_errors,
)
from sync.store.outbox import (
    replace_pending_ops as replace_pending_ops,
)
from sync.store.outbox import (
    resolve_errors as resolve_errors,
)
from sync.store.outbox import (
    schedule_write_retry as schedule_write_retry,
)
from sync.store.outbox import (
    sync_bad_values as sync_bad_values,
)
from sync.store.runs import (
    acquire_lease as acquire_lease,
)
from sync.store.runs import (
    add_api_usage as add_api_usage,
)
from sync.store.runs import (
    confirm_cursor_read as confirm_cursor_read,
)
from sync.store.runs import (
    finish_run as finish_run,
)
from sync.store.runs import (
    get_cursor as get_cursor,
)
from sync.store.runs import (
    raw_hashes as raw_hashes,
)
from sync.store.runs import (
    release_lease as release_lease,
)
from sync.store.runs import (
    set_cursor as set_cursor,
)
from sync.store.runs import (
    start_run as start_run,
)
from sync.store.runs import (
    touch_refs as touch_refs,
)
from sync.store.tables import (
    ENTITY_TABLES as ENTITY_TABLES,
)
from sync.store.tables import (
    ID as ID,
)
from sync.store.tables import (
    MONEY as MONEY,
)
from sync.store.tables import (
    NAMING_CONVENTION as NAMING_CONVENTION,
)
from sync.store.tables import (
    AccountRow as AccountRow,
)
from sync.store.tables import (
    ApiUsageRow as ApiUsageRow,
)
from sync.store.tables import (
    Base as Base,
)
from sync.store.tables import (
    ContactRow as ContactRow,
)
from sync.store.tables import (
    ErrorLedgerRow as ErrorLedgerRow,
)
from sync.store.tables import (
    ExternalRefRow as ExternalRefRow,
)
from sync.store.tables import (
    FieldProvenanceRow as FieldProvenanceRow,
)
from sync.store.tables import (
    HandoffRow as HandoffRow,
)
from sync.store.tables import (
    LeaseRow as LeaseRow,
)
from sync.store.tables import (
    MatchModelRow as MatchModelRow,
)
from sync.store.tables import (
    MatchReviewRow as MatchReviewRow,
)
from sync.store.tables import (
    MergeLedgerRow as MergeLedgerRow,
)
from sync.store.tables import (
    OpportunityContactRow as OpportunityContactRow,
)
from sync.store.tables import (
    OpportunityRow as OpportunityRow,
)
from sync.store.tables import (
    OutboxRow as OutboxRow,
)
from sync.store.tables import (
    SyncCursorRow as SyncCursorRow,
)
from sync.store.tables import (
    SyncRunRow as SyncRunRow,
)
from sync.store.tables import (
    UTCDateTime as UTCDateTime,
)
from sync.store.tables import (
    _EntityColumns as _EntityColumns,
)
from sync.store.tables import (
    metadata as metadata,
)
