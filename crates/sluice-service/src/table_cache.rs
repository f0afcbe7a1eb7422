//! Current table metadata kept in memory, so a warm load-table reads no database row and
//! parses no JSON: the stored metadata text (and its `snapshots=refs` cut, made once) is
//! spliced into each response as is.
//!
//! An entry must never outlive the row it was read from. Every change of a table row goes
//! through [`TableCache::forget_table`] / [`TableCache::forget_name`] — in this process right
//! after the store call returns (whatever it returned), on other replicas through the change
//! feed (`Change::Table`). A fill reads the row *after* noting the cache's generation and
//! is dropped if any invalidation happened meanwhile, so a load that read the row before a
//! commit cannot put the old metadata back after the commit cleared it. While the feed is
//! down nothing is served or stored (`set_bypass`), as for the policy cache.

use crate::rest::SnapshotsMode;
use moka::sync::Cache;
use sluice_store::TableRecord;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// The default bound of the cache: a few hundred ordinary tables, or a dozen with 10,000
/// snapshots each.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Keys are names, not ids: a load knows only the name.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct TableKey {
    warehouse: Uuid,
    /// Namespace and table name, separated by 0x1F (which neither may contain).
    path: Arc<str>,
    mode: SnapshotsMode,
}

impl TableKey {
    pub(crate) fn new(warehouse: Uuid, namespace: &str, name: &str, mode: SnapshotsMode) -> Self {
        TableKey {
            warehouse,
            path: format!("{namespace}\u{1f}{name}").into(),
            mode,
        }
    }

    fn with_mode(&self, mode: SnapshotsMode) -> Self {
        TableKey {
            mode,
            ..self.clone()
        }
    }
}

/// One table's row as a load needs it. `record.metadata_json` is empty: the text is in
/// `metadata` (cut to the referenced snapshots for a `Refs` key).
pub(crate) struct CachedTable {
    pub(crate) record: TableRecord,
    pub(crate) metadata: Arc<str>,
}

impl CachedTable {
    fn weight(&self) -> u32 {
        let r = &self.record;
        let bytes = 256
            + r.namespace.to_string().len()
            + r.name.len()
            + r.location.len()
            + r.metadata_location.len()
            + self.metadata.len();
        u32::try_from(bytes).unwrap_or(u32::MAX)
    }
}

/// Which generation a fill started in; see [`TableCache::insert`].
#[derive(Clone, Copy)]
pub(crate) struct FillTicket(u64);

struct Index {
    /// Bumped by every invalidation.
    generation: u64,
    /// The keys filled per table id, so a change announced by id finds them.
    keys: HashMap<Uuid, Vec<TableKey>>,
}

/// Past this many indexed ids (evicted entries leave their id behind) the index starts over.
const MAX_INDEXED_IDS: usize = 100_000;

/// The gateway's question "which live table holds the objects of this directory": a
/// warehouse id and a key's directory (below the warehouse's base location).
type LocationKey = (Uuid, Arc<str>);

/// How many directories the gateway's location answers are kept for.
const MAX_LOCATIONS: u64 = 10_000;

pub(crate) struct TableCache {
    entries: Option<Cache<TableKey, Arc<CachedTable>>>,
    /// Answers of the gateway's location lookup, each tagged with the generation it was
    /// read in: any table change makes every answer stale (a commit may move a location,
    /// a create or drop adds or removes one), so nothing finer-grained is tracked.
    locations: Option<Cache<LocationKey, (u64, Arc<TableRecord>)>>,
    index: Mutex<Index>,
    bypass: AtomicBool,
}

impl TableCache {
    /// At most `max_bytes` of metadata (least recently used evicted first); 0 turns the
    /// cache off.
    pub(crate) fn new(max_bytes: u64) -> Self {
        let entries = (max_bytes > 0).then(|| {
            Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|k: &TableKey, v: &Arc<CachedTable>| {
                    v.weight().saturating_add(k.path.len() as u32)
                })
                .build()
        });
        let locations = (max_bytes > 0).then(|| Cache::new(MAX_LOCATIONS));
        TableCache {
            entries,
            locations,
            index: Mutex::new(Index {
                generation: 0,
                keys: HashMap::new(),
            }),
            bypass: AtomicBool::new(false),
        }
    }

    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn get(&self, key: &TableKey) -> Option<Arc<CachedTable>> {
        if self.bypass.load(Ordering::Acquire) {
            return None;
        }
        self.entries.as_ref()?.get(key)
    }

    /// The cached row of the table with this id, under whichever name it was loaded (the
    /// signer knows only the id). Entries go with every change of the table, as by name.
    pub(crate) fn get_by_id(&self, id: Uuid) -> Option<Arc<CachedTable>> {
        if self.bypass.load(Ordering::Acquire) {
            return None;
        }
        let entries = self.entries.as_ref()?;
        // Looked up under the index lock (a map read per key, no await), rather than copying
        // the keys out on every signed request.
        let index = self.index();
        // A name may hold another table by now (dropped, then created again).
        index
            .keys
            .get(&id)?
            .iter()
            .filter_map(|k| entries.get(k))
            .find(|t| t.record.id == id)
    }

    /// Taken before the row is read; hand it back to [`TableCache::insert`].
    pub(crate) fn ticket(&self) -> FillTicket {
        FillTicket(self.index().generation)
    }

    /// Stores what was read under `ticket`, unless something was invalidated since (then
    /// the row may already be older than a change that was acknowledged).
    pub(crate) fn insert(&self, ticket: FillTicket, key: TableKey, value: Arc<CachedTable>) {
        let Some(entries) = &self.entries else {
            return;
        };
        if self.bypass.load(Ordering::Acquire) {
            return;
        }
        let mut index = self.index();
        if index.generation != ticket.0 {
            return;
        }
        if index.keys.len() >= MAX_INDEXED_IDS {
            index.keys.clear();
            index.generation += 1;
            entries.invalidate_all();
            return;
        }
        let keys = index.keys.entry(value.record.id).or_default();
        if !keys.contains(&key) {
            keys.push(key.clone());
        }
        entries.insert(key, value);
    }

    /// The live table holding the objects of `dir` in `warehouse`, as last read, unless any
    /// table changed since.
    pub(crate) fn located(&self, warehouse: Uuid, dir: &str) -> Option<Arc<TableRecord>> {
        if self.bypass.load(Ordering::Acquire) {
            return None;
        }
        let (generation, table) = self.locations.as_ref()?.get(&(warehouse, Arc::from(dir)))?;
        (generation == self.index().generation).then_some(table)
    }

    /// Notes that `table` holds the objects of `dir`, read under `ticket`.
    pub(crate) fn insert_location(
        &self,
        ticket: FillTicket,
        warehouse: Uuid,
        dir: &str,
        table: Arc<TableRecord>,
    ) {
        let Some(locations) = &self.locations else {
            return;
        };
        if self.bypass.load(Ordering::Acquire) {
            return;
        }
        let index = self.index();
        if index.generation == ticket.0 {
            locations.insert((warehouse, Arc::from(dir)), (ticket.0, table));
        }
    }

    /// The table with this id changed: every name it was cached under is dropped.
    pub(crate) fn forget_table(&self, id: Uuid) {
        let Some(entries) = &self.entries else {
            return;
        };
        let mut index = self.index();
        index.generation += 1;
        for key in index.keys.remove(&id).unwrap_or_default() {
            entries.invalidate(&key);
        }
    }

    /// Whatever is cached under this name is dropped (a rename's or drop's source, when the
    /// store could not say which table it touched).
    pub(crate) fn forget_name(&self, key: &TableKey) {
        let Some(entries) = &self.entries else {
            return;
        };
        let mut index = self.index();
        index.generation += 1;
        entries.invalidate(&key.with_mode(SnapshotsMode::All));
        entries.invalidate(&key.with_mode(SnapshotsMode::Refs));
        drop(index);
    }

    pub(crate) fn clear(&self) {
        let Some(entries) = &self.entries else {
            return;
        };
        let mut index = self.index();
        index.generation += 1;
        index.keys.clear();
        entries.invalidate_all();
        if let Some(l) = &self.locations {
            l.invalidate_all();
        }
    }

    /// While the change feed is down, changes on other replicas go unheard: serve and store
    /// nothing.
    pub(crate) fn set_bypass(&self, bypass: bool) {
        self.bypass.store(bypass, Ordering::Release);
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::NamespaceName;

    fn record(id: Uuid, loc: &str) -> TableRecord {
        let n = chrono::Utc::now();
        TableRecord {
            id,
            warehouse_id: Uuid::nil(),
            namespace_id: Uuid::nil(),
            namespace: NamespaceName::new(vec!["db".into()]).unwrap(),
            name: "t".into(),
            location: "file:///x".into(),
            metadata_location: loc.into(),
            metadata_json: String::new(),
            created_at: n,
            updated_at: n,
        }
    }

    fn entry(id: Uuid, loc: &str) -> Arc<CachedTable> {
        Arc::new(CachedTable {
            record: record(id, loc),
            metadata: Arc::from("{}"),
        })
    }

    #[test]
    fn a_fill_that_overlaps_an_invalidation_is_not_stored() {
        let cache = TableCache::new(1 << 20);
        let id = Uuid::new_v4();
        let key = TableKey::new(Uuid::nil(), "db", "t", SnapshotsMode::All);
        let ticket = cache.ticket();
        // A commit lands (and clears the table) while the fill was reading the old row.
        cache.forget_table(id);
        cache.insert(ticket, key.clone(), entry(id, "v1"));
        assert!(cache.get(&key).is_none());
        // A fill that started after it is kept, until the next change of that table.
        let ticket = cache.ticket();
        cache.insert(ticket, key.clone(), entry(id, "v2"));
        assert_eq!(&*cache.get(&key).unwrap().record.metadata_location, "v2");
        cache.forget_table(Uuid::new_v4());
        assert!(cache.get(&key).is_some(), "another table's change");
        cache.forget_table(id);
        assert!(cache.get(&key).is_none());
        // By name, both modes go.
        let refs = key.with_mode(SnapshotsMode::Refs);
        let ticket = cache.ticket();
        cache.insert(ticket, key.clone(), entry(id, "v3"));
        cache.insert(ticket, refs.clone(), entry(id, "v3"));
        cache.forget_name(&key);
        assert!(cache.get(&key).is_none() && cache.get(&refs).is_none());
        // Bypassed: nothing served, nothing stored.
        cache.set_bypass(true);
        let ticket = cache.ticket();
        cache.insert(ticket, key.clone(), entry(id, "v4"));
        assert!(cache.get(&key).is_none());
        cache.set_bypass(false);
        let ticket = cache.ticket();
        cache.insert(ticket, key.clone(), entry(id, "v5"));
        assert!(cache.get(&key).is_some());
    }

    #[test]
    fn zero_bytes_turns_it_off() {
        let cache = TableCache::new(0);
        let key = TableKey::new(Uuid::nil(), "db", "t", SnapshotsMode::All);
        let ticket = cache.ticket();
        cache.insert(ticket, key.clone(), entry(Uuid::new_v4(), "v1"));
        assert!(cache.get(&key).is_none());
    }
}
