//! The data of "Data at scale N" (`WORKLOAD.md`), generated deterministically from a seed.
//!
//! Every row is a pure function of its index and a few seed-derived parameters (or of a
//! per-table random stream), so each table is streamed into
//! [`crate::backend::Bulk::bulk_insert`] without holding N rows anywhere.
//!
//! Dataset ids are contiguous blocks in this order: raw, bias, flat, calexp, src; the
//! removed datasets follow the largest id.

use std::time::{Duration, Instant};

use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, SeedableRng};

use super::schema::{CALIBS_DETECTOR, TAGS_DETECTOR, TAGS_EXPOSURE, TAGS_VISIT};
use crate::backend::{Connection, DbError, Value};

/// The one instrument.
pub const INSTRUMENT: &str = "HSC";
/// Detectors per exposure or visit (ids 0–99).
pub const DETECTORS: u64 = 100;
/// The first exposure and visit number.
pub const FIRST_EXPOSURE: u64 = 900_000;
/// The datastore every dataset is located in.
pub const DATASTORE: &str = "FileDatastore@<butlerRoot>";
/// Start of calibration epoch 0, in TAI nanoseconds (2020-01-01).
pub const CALIB_T0: i64 = 1_577_836_800_000_000_000;
/// Length of one calibration validity epoch (30 days, in nanoseconds).
pub const CALIB_PERIOD: i64 = 30 * 86_400 * 1_000_000_000;
/// `ingest_date` of dataset id `i` is this Unix time plus `i` seconds (2024-01-01).
const INGEST_BASE: i64 = 1_704_067_200;

/// Dataset type id of `raw`.
pub const RAW: i64 = 1;
/// Dataset type id of `calexp`.
pub const CALEXP: i64 = 2;
/// Dataset type id of `src`.
pub const SRC: i64 = 3;
/// Dataset type id of `bias`.
pub const BIAS: i64 = 4;
/// Dataset type id of `flat`.
pub const FLAT: i64 = 5;

/// Collection id of the RUN `HSC/raw/all`.
pub const RAW_RUN: i64 = 1;
/// `HSC/runs/w_00` … `w_09` are ids `FIRST_W_RUN` … `FIRST_W_RUN + 9`.
pub const FIRST_W_RUN: i64 = 2;
/// Collection id of the CALIBRATION collection `HSC/calib`.
pub const CALIB_COLLECTION: i64 = 12;
/// Collection id of the TAGGED collection `HSC/tagged/good`.
pub const TAGGED_COLLECTION: i64 = 13;
/// Calibration epoch `e` lives in RUN id `FIRST_CALIB_RUN + e`.
pub const FIRST_CALIB_RUN: i64 = 14;
/// `collection.type` of a RUN.
pub const COLLECTION_RUN: i64 = 1;
/// `collection.type` of a TAGGED collection.
pub const COLLECTION_TAGGED: i64 = 2;
/// `collection.type` of a CALIBRATION collection.
pub const COLLECTION_CALIBRATION: i64 = 4;

/// How many of everything a repository at scale N holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scale {
    /// Datasets in the registry (ids 1..=n).
    pub n: u64,
    /// `raw` datasets (40 % of N).
    pub raw: u64,
    /// `calexp` datasets (40 % of N).
    pub calexp: u64,
    /// `src` datasets (the rest).
    pub src: u64,
    /// `bias` datasets (0.02 % of N, at least one).
    pub bias: u64,
    /// `flat` datasets (as many as `bias`).
    pub flat: u64,
    /// Calexps also in `HSC/tagged/good`.
    pub tagged: u64,
    /// Datasets known only to the datastore (ids n+1..=n+removed).
    pub removed: u64,
    /// Exposures (100 detectors each).
    pub exposures: u64,
    /// Visits (100 detectors each).
    pub visits: u64,
    /// Calibration validity epochs (and calibration RUNs).
    pub epochs: u64,
}

impl Scale {
    /// The counts of `WORKLOAD.md` for `n` datasets; `n` must be at least 9.
    pub fn new(n: u64) -> Result<Scale, DbError> {
        let raw = n * 2 / 5;
        let calexp = n * 2 / 5;
        let bias = (n / 5000).max(1);
        let flat = bias;
        let src = n
            .checked_sub(raw + calexp + bias + flat)
            .filter(|src| *src <= calexp)
            .ok_or_else(|| DbError::other(format!("scale N = {n} is too small (at least 9)")))?;
        Ok(Scale {
            n,
            raw,
            calexp,
            src,
            bias,
            flat,
            tagged: calexp / 10,
            removed: n / 200,
            exposures: raw.div_ceil(DETECTORS),
            visits: calexp.div_ceil(DETECTORS),
            epochs: bias.max(flat).div_ceil(DETECTORS),
        })
    }

    /// The largest registry dataset id.
    #[cfg(any(test, feature = "internals"))]
    pub fn max_id(&self) -> i64 {
        self.n as i64
    }

    fn first_bias(&self) -> u64 {
        self.raw + 1
    }
    fn first_flat(&self) -> u64 {
        self.first_bias() + self.bias
    }
    fn first_calexp(&self) -> u64 {
        self.first_flat() + self.flat
    }
    fn first_src(&self) -> u64 {
        self.first_calexp() + self.calexp
    }
}

/// The name of a collection id of this workload.
pub fn collection_name(id: i64) -> String {
    match id {
        RAW_RUN => "HSC/raw/all".into(),
        CALIB_COLLECTION => "HSC/calib".into(),
        TAGGED_COLLECTION => "HSC/tagged/good".into(),
        FIRST_CALIB_RUN => "HSC/calib/run".into(),
        id if id > FIRST_CALIB_RUN => format!("HSC/calib/run/e{:02}", id - FIRST_CALIB_RUN),
        id => format!("HSC/runs/w_{:02}", id - FIRST_W_RUN),
    }
}

/// What a registry dataset is: its type, run and data ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dataset {
    type_id: i64,
    run: i64,
    /// Exposure (raw) or visit (calexp, src); `None` for bias and flat.
    exposure_or_visit: Option<i64>,
    detector: i64,
    /// Calibration epoch (bias and flat).
    epoch: i64,
}

impl Dataset {
    fn type_name(&self) -> &'static str {
        match self.type_id {
            RAW => "raw",
            CALEXP => "calexp",
            SRC => "src",
            BIAS => "bias",
            _ => "flat",
        }
    }

    fn storage_class(&self) -> &'static str {
        match self.type_id {
            RAW => "Exposure",
            SRC => "SourceCatalog",
            _ => "ExposureF",
        }
    }

    fn formatter(&self) -> &'static str {
        match self.type_id {
            RAW => "lsst.obs.subaru.rawFormatter.HyperSuprimeCamRawFormatter",
            SRC => "lsst.daf.butler.formatters.parquet.ParquetFormatter",
            _ => "lsst.obs.base.formatters.fitsExposure.FitsExposureFormatter",
        }
    }

    /// A path unique to (type, run, data ID).
    fn path(&self) -> String {
        let run = collection_name(self.run);
        let name = self.type_name();
        let flat_run = run.replace('/', "_");
        match self.exposure_or_visit {
            Some(e) => {
                let d = self.detector;
                format!("{run}/{name}/{e}/{name}_{INSTRUMENT}_{e}_{d:03}_{flat_run}.fits")
            }
            None => format!(
                "{run}/{name}/{name}_{INSTRUMENT}_{:03}_{flat_run}.fits",
                self.detector
            ),
        }
    }
}

/// Seed-derived parameters that tie tables together.
#[derive(Debug, Clone, Copy)]
struct Layout {
    scale: Scale,
    seed: u64,
    /// src `k` shares calexp `(src_a·k + src_b) mod calexp` (a bijection, so no two
    /// src share a calexp).
    src_a: u64,
    src_b: u64,
    /// Tagged calexp `t` is calexp `(tag_a·t + tag_b) mod calexp`.
    tag_a: u64,
    tag_b: u64,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// A multiplier coprime to `m` (so `k ↦ a·k + b mod m` is a permutation).
fn coprime(rng: &mut Xoshiro256PlusPlus, m: u64) -> u64 {
    if m <= 1 {
        return 1;
    }
    let mut a = rng.next_u64() % m;
    loop {
        if a != 0 && gcd(a, m) == 1 {
            return a;
        }
        a = (a + 1) % m;
    }
}

fn affine(a: u64, b: u64, k: u64, m: u64) -> u64 {
    ((a as u128 * k as u128 + b as u128) % m as u128) as u64
}

/// A random stream for one table, independent of the others.
fn stream(seed: u64, table: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed ^ table.wrapping_mul(0xA076_1D64_78BD_642F))
}

impl Layout {
    fn new(scale: Scale, seed: u64) -> Layout {
        let mut rng = stream(seed, 0);
        let m = scale.calexp.max(1);
        let src_a = coprime(&mut rng, m);
        let src_b = rng.next_u64() % m;
        let tag_a = coprime(&mut rng, m);
        let tag_b = rng.next_u64() % m;
        Layout {
            scale,
            seed,
            src_a,
            src_b,
            tag_a,
            tag_b,
        }
    }

    /// The RUN of a calexp visit (index from 0).
    fn visit_run(&self, visit_index: u64) -> i64 {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(
            self.seed ^ visit_index.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5555,
        );
        FIRST_W_RUN + (rng.next_u64() % 10) as i64
    }

    fn calexp(&self, j: u64) -> Dataset {
        Dataset {
            type_id: CALEXP,
            run: self.visit_run(j / DETECTORS),
            exposure_or_visit: Some((FIRST_EXPOSURE + j / DETECTORS) as i64),
            detector: (j % DETECTORS) as i64,
            epoch: 0,
        }
    }

    fn calexp_id(&self, j: u64) -> i64 {
        (self.scale.first_calexp() + j) as i64
    }

    fn src_calexp(&self, k: u64) -> u64 {
        affine(self.src_a, self.src_b, k, self.scale.calexp)
    }

    fn tagged_calexp(&self, t: u64) -> u64 {
        affine(self.tag_a, self.tag_b, t, self.scale.calexp)
    }

    /// The registry dataset of id `id` (1..=n).
    fn dataset(&self, id: u64) -> Dataset {
        let s = &self.scale;
        let calib = |type_id: i64, i: u64| Dataset {
            type_id,
            run: FIRST_CALIB_RUN + (i / DETECTORS) as i64,
            exposure_or_visit: None,
            detector: (i % DETECTORS) as i64,
            epoch: (i / DETECTORS) as i64,
        };
        if id < s.first_bias() {
            let i = id - 1;
            Dataset {
                type_id: RAW,
                run: RAW_RUN,
                exposure_or_visit: Some((FIRST_EXPOSURE + i / DETECTORS) as i64),
                detector: (i % DETECTORS) as i64,
                epoch: 0,
            }
        } else if id < s.first_flat() {
            calib(BIAS, id - s.first_bias())
        } else if id < s.first_calexp() {
            calib(FLAT, id - s.first_flat())
        } else if id < s.first_src() {
            self.calexp(id - s.first_calexp())
        } else {
            Dataset {
                type_id: SRC,
                ..self.calexp(self.src_calexp(id - s.first_src()))
            }
        }
    }
}

/// What [`fill_v1`] inserted.
#[derive(Debug, Clone, PartialEq)]
pub struct FillReport {
    /// The counts filled.
    pub scale: Scale,
    /// The seed the data came from.
    pub seed: u64,
    /// Rows inserted per table, in insertion order.
    pub rows: Vec<(String, u64)>,
    /// Wall time of the whole fill.
    pub elapsed: Duration,
}

impl FillReport {
    /// Rows inserted in all tables.
    pub fn total_rows(&self) -> u64 {
        self.rows.iter().map(|(_, n)| n).sum()
    }

    /// Rows per second over the whole fill.
    #[cfg(any(test, feature = "internals"))]
    pub fn rows_per_second(&self) -> f64 {
        self.total_rows() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn text(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}

fn int(i: impl TryInto<i64>) -> Value {
    Value::Int(i.try_into().unwrap_or(i64::MAX))
}

fn ingest_date(id: u64) -> Value {
    let stamp = crate::clock::format_utc(INGEST_BASE + id as i64);
    // `2024-01-01T00:00:00Z` → `2024-01-01 00:00:00`, the form both databases print.
    text(stamp.trim_end_matches('Z').replacen('T', " ", 1))
}

fn hex(rng: &mut Xoshiro256PlusPlus, words: usize) -> String {
    let mut s = String::with_capacity(words * 16);
    for _ in 0..words {
        s.push_str(&format!("{:016x}", rng.next_u64()));
    }
    s
}

/// Fills an existing, empty v1 schema with the data of scale `n`, deterministically
/// from `seed`, in one transaction.
pub fn fill_v1(conn: &mut dyn Connection, n: u64, seed: u64) -> Result<FillReport, DbError> {
    let scale = Scale::new(n)?;
    let layout = Layout::new(scale, seed);
    let start = Instant::now();
    let mut rows = Vec::new();
    crate::checkpoint::with_transaction(conn, |conn| {
        let suspended = suspend_foreign_keys(conn)?;
        insert_all(conn, &layout, &mut rows)?;
        restore_foreign_keys(conn, suspended)?;
        advance_sequences(conn)
    })?;
    analyze(conn)?;
    Ok(FillReport {
        scale,
        seed,
        rows,
        elapsed: start.elapsed(),
    })
}

/// A live repository has planner statistics (PostgreSQL's autovacuum keeps them); a
/// freshly loaded one may have none, and plan joins over millions of rows as if they
/// held a few hundred. Give it what a restore's `vacuumdb --analyze` would
/// ([`crate::backend::Bulk::refresh_statistics`]).
fn analyze(conn: &mut dyn Connection) -> Result<(), DbError> {
    for table in super::schema::v1_tables() {
        conn.refresh_statistics(&table.name)?;
    }
    Ok(())
}

/// Where the backend checks foreign keys faster after a load than row by row
/// ([`crate::backend::Bulk::add_foreign_keys_after_bulk_load`]; PostgreSQL's per-row
/// trigger costs about 10 µs a row, a minute for N = 1,000,000), the workload's foreign
/// keys are dropped for the load and added back, under the same names, in the same
/// transaction (a dump restore does the same). Elsewhere (SQLite) they are kept.
fn suspend_foreign_keys(
    conn: &mut dyn Connection,
) -> Result<Vec<(String, crate::backend::ForeignKeyDef)>, DbError> {
    let mut suspended = Vec::new();
    if !conn.add_foreign_keys_after_bulk_load() {
        return Ok(suspended);
    }
    for table in super::schema::v1_tables() {
        for k in conn.foreign_keys(&table.name)? {
            conn.apply_schema_change(&crate::backend::SchemaChange::DropConstraint {
                table: table.name.clone(),
                name: k.name.clone(),
            })?;
            let key = crate::backend::ForeignKeyDef {
                name: k.name,
                columns: k.columns,
                referenced_table: k.referenced_table,
                referenced_columns: k.referenced_columns,
                on_delete: Some(k.on_delete),
            };
            suspended.push((table.name.clone(), key));
        }
    }
    Ok(suspended)
}

fn restore_foreign_keys(
    conn: &mut dyn Connection,
    suspended: Vec<(String, crate::backend::ForeignKeyDef)>,
) -> Result<(), DbError> {
    for (table, key) in suspended {
        conn.apply_schema_change(&crate::backend::SchemaChange::AddForeignKey { table, key })?;
    }
    Ok(())
}

/// The generator writes explicit ids, as a dump restore would; the application's next
/// insert must still get a fresh one, so each key generator is moved past the largest id
/// ([`crate::backend::Bulk::advance_key_generator`]: a PostgreSQL identity sequence is
/// set; SQLite's AUTOINCREMENT follows the largest id by itself).
fn advance_sequences(conn: &mut dyn Connection) -> Result<(), DbError> {
    for (table, column) in [
        ("collection", "collection_id"),
        ("dataset", "id"),
        (CALIBS_DETECTOR, "id"),
    ] {
        conn.advance_key_generator(table, column)?;
    }
    Ok(())
}

fn insert(
    conn: &mut dyn Connection,
    report: &mut Vec<(String, u64)>,
    table: &str,
    columns: &[&str],
    rows: impl Iterator<Item = Vec<Value>>,
) -> Result<(), DbError> {
    let columns: Vec<String> = columns.iter().map(|c| (*c).to_string()).collect();
    let mut rows = rows;
    let count = conn.bulk_insert(table, &columns, &mut rows)?;
    report.push((table.to_string(), count));
    Ok(())
}

fn insert_all(
    conn: &mut dyn Connection,
    layout: &Layout,
    report: &mut Vec<(String, u64)>,
) -> Result<(), DbError> {
    let s = layout.scale;
    let l = *layout;

    insert(
        conn,
        report,
        "instrument",
        &[
            "name",
            "visit_max",
            "exposure_max",
            "detector_max",
            "class_name",
        ],
        std::iter::once(vec![
            text(INSTRUMENT),
            int(21_474_800),
            int(21_474_800),
            int(200),
            text("lsst.obs.subaru.HyperSuprimeCam"),
        ]),
    )?;
    insert(
        conn,
        report,
        "detector",
        &["instrument", "id", "full_name"],
        (0..DETECTORS).map(|d| vec![text(INSTRUMENT), int(d), text(format!("ccd{d:03}"))]),
    )?;
    let day_obs = |i: u64| int(20_240_101 + (i / 1000) % 28);
    insert(
        conn,
        report,
        "exposure",
        &["instrument", "id", "obs_id", "day_obs"],
        (0..s.exposures).map(|i| {
            let id = FIRST_EXPOSURE + i;
            vec![
                text(INSTRUMENT),
                int(id),
                text(format!("HSCA{id:08}")),
                day_obs(i),
            ]
        }),
    )?;
    insert(
        conn,
        report,
        "visit",
        &["instrument", "id", "name", "day_obs"],
        (0..s.visits).map(|i| {
            let id = FIRST_EXPOSURE + i;
            vec![
                text(INSTRUMENT),
                int(id),
                text(format!("visit-{id}")),
                day_obs(i),
            ]
        }),
    )?;

    let runs: Vec<i64> = (RAW_RUN..CALIB_COLLECTION)
        .chain(FIRST_CALIB_RUN..FIRST_CALIB_RUN + s.epochs as i64)
        .collect();
    let collections = runs.iter().map(|&id| (id, COLLECTION_RUN)).chain([
        (CALIB_COLLECTION, COLLECTION_CALIBRATION),
        (TAGGED_COLLECTION, COLLECTION_TAGGED),
    ]);
    insert(
        conn,
        report,
        "collection",
        &["collection_id", "name", "type"],
        collections.map(|(id, kind)| vec![int(id), text(collection_name(id)), int(kind)]),
    )?;
    insert(
        conn,
        report,
        "run",
        &["collection_id", "host", "timespan_begin", "timespan_end"],
        runs.iter().map(|&id| {
            let begin = CALIB_T0 + id * 3_600_000_000_000;
            vec![
                int(id),
                text("sample.example.org"),
                int(begin),
                int(begin + 3_600_000_000_000),
            ]
        }),
    )?;
    let types = [
        (RAW, "raw", "Exposure", "00000001", TAGS_EXPOSURE, None),
        (CALEXP, "calexp", "ExposureF", "00000002", TAGS_VISIT, None),
        (SRC, "src", "SourceCatalog", "00000002", TAGS_VISIT, None),
        (
            BIAS,
            "bias",
            "ExposureF",
            "00000003",
            TAGS_DETECTOR,
            Some(CALIBS_DETECTOR),
        ),
        (
            FLAT,
            "flat",
            "ExposureF",
            "00000003",
            TAGS_DETECTOR,
            Some(CALIBS_DETECTOR),
        ),
    ];
    insert(
        conn,
        report,
        "dataset_type",
        &[
            "id",
            "name",
            "storage_class",
            "dimensions_key",
            "tag_association_table",
            "calibration_association_table",
        ],
        types.iter().map(|(id, name, class, key, tags, calibs)| {
            vec![
                int(*id),
                text(*name),
                text(*class),
                text(*key),
                text(*tags),
                calibs.map(text).unwrap_or(Value::Null),
            ]
        }),
    )?;

    insert(
        conn,
        report,
        "dataset",
        &["id", "dataset_type_id", "run_id", "ingest_date"],
        (1..=s.n).map(|id| {
            let d = l.dataset(id);
            vec![int(id), int(d.type_id), int(d.run), ingest_date(id)]
        }),
    )?;

    let tags_columns = |extra: &'static str| -> Vec<&'static str> {
        let mut c = vec![
            "dataset_type_id",
            "dataset_id",
            "collection_id",
            "instrument",
        ];
        if !extra.is_empty() {
            c.push(extra);
        }
        c.push("detector");
        c
    };
    let tags_row = |d: Dataset, id: u64, collection: i64| {
        let mut row = vec![int(d.type_id), int(id), int(collection), text(INSTRUMENT)];
        if let Some(e) = d.exposure_or_visit {
            row.push(int(e));
        }
        row.push(int(d.detector));
        row
    };
    insert(
        conn,
        report,
        TAGS_EXPOSURE,
        &tags_columns("exposure"),
        (1..=s.raw).map(|id| tags_row(l.dataset(id), id, RAW_RUN)),
    )?;
    let tagged = (0..s.tagged).map(|t| {
        let j = l.tagged_calexp(t);
        tags_row(l.calexp(j), l.calexp_id(j) as u64, TAGGED_COLLECTION)
    });
    insert(
        conn,
        report,
        TAGS_VISIT,
        &tags_columns("visit"),
        (s.first_calexp()..=s.n)
            .map(|id| {
                let d = l.dataset(id);
                tags_row(d, id, d.run)
            })
            .chain(tagged),
    )?;
    let calibs = s.first_bias()..s.first_calexp();
    insert(
        conn,
        report,
        TAGS_DETECTOR,
        &tags_columns(""),
        calibs.clone().map(|id| {
            let d = l.dataset(id);
            tags_row(d, id, d.run)
        }),
    )?;
    insert(
        conn,
        report,
        CALIBS_DETECTOR,
        &[
            "id",
            "dataset_type_id",
            "dataset_id",
            "collection_id",
            "instrument",
            "detector",
            "validity_begin",
            "validity_end",
        ],
        calibs.enumerate().map(|(i, id)| {
            let d = l.dataset(id);
            vec![
                int(i as u64 + 1),
                int(d.type_id),
                int(id),
                int(CALIB_COLLECTION),
                text(INSTRUMENT),
                int(d.detector),
                int(CALIB_T0 + d.epoch * CALIB_PERIOD),
                int(CALIB_T0 + (d.epoch + 1) * CALIB_PERIOD),
            ]
        }),
    )?;

    let mut rng = stream(l.seed, 1);
    insert(
        conn,
        report,
        "file_datastore_records",
        &[
            "dataset_id",
            "component",
            "path",
            "formatter",
            "storage_class",
            "checksum",
            "file_size",
        ],
        (1..=s.n + s.removed).map(move |id| {
            let (path, formatter, class) = if id <= s.n {
                let d = l.dataset(id);
                (d.path(), d.formatter(), d.storage_class())
            } else {
                let path = format!("HSC/runs/scratch/calexp/calexp_{INSTRUMENT}_{id}.fits");
                (path, l.dataset(s.first_calexp()).formatter(), "ExposureF")
            };
            let checksum = hex(&mut rng, 2);
            let size = 1_000_000 + rng.next_u64() % 50_000_000;
            vec![
                int(id),
                text(""),
                text(path),
                text(formatter),
                text(class),
                text(checksum),
                int(size),
            ]
        }),
    )?;
    insert(
        conn,
        report,
        "dataset_location",
        &["dataset_id", "datastore_name"],
        (1..=s.n).map(|id| vec![int(id), text(DATASTORE)]),
    )?;
    insert(
        conn,
        report,
        "dataset_location_trash",
        &["dataset_id", "datastore_name"],
        (s.n + 1..=s.n + s.removed).map(|id| vec![int(id), text(DATASTORE)]),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_of_a_million() {
        let s = Scale::new(1_000_000).unwrap();
        assert_eq!(
            (s.raw, s.calexp, s.bias, s.flat),
            (400_000, 400_000, 200, 200)
        );
        assert_eq!(s.src, 199_600);
        assert_eq!((s.tagged, s.removed, s.epochs), (40_000, 5_000, 2));
        assert!(Scale::new(5).is_err());
        let small = Scale::new(10).unwrap();
        assert_eq!((small.bias, small.flat, small.src), (1, 1, 0));
    }

    #[test]
    fn src_share_distinct_calexps() {
        let s = Scale::new(20_000).unwrap();
        let l = Layout::new(s, 7);
        let mut seen = std::collections::HashSet::new();
        for k in 0..s.src {
            assert!(seen.insert(l.src_calexp(k)));
        }
        let mut tagged = std::collections::HashSet::new();
        for t in 0..s.tagged {
            assert!(tagged.insert(l.tagged_calexp(t)));
        }
    }

    #[test]
    fn collection_names() {
        assert_eq!(collection_name(FIRST_W_RUN + 9), "HSC/runs/w_09");
        assert_eq!(collection_name(FIRST_CALIB_RUN + 1), "HSC/calib/run/e01");
        assert_eq!(collection_name(FIRST_CALIB_RUN), "HSC/calib/run");
    }
}
