#!/usr/bin/env node
// Reads actquery exports and actrec store segments with independent readers
// from npm (no Go, no Python) and prints what each reader sees as JSON:
//
//   DuckDB (@duckdb/node-api)  Parquet file and Hive-partitioned dataset
//   hyparquet                  Parquet file and every file of a dataset
//   apache-arrow               Arrow IPC exports and store segment files
//                              (LZ4_FRAME via lz4js, ZSTD via fzstd)
//
// Usage (after `npm ci --prefix examples/js`):
//
//   node examples/js/check_exports.mjs [--values N] \
//       --parquet relu1.parquet --dataset dataset/ \
//       --arrow conv1.arrow --segment actrec-data/segments/0000000000000001/00000001.arrow
//
// Every option is repeatable. Output (stdout, one JSON document):
//
//   {"readers": {name: version}, "tables": [{
//      "reader", "source" ("parquet" | "dataset" | "arrow" | "segment"), "path",
//      "metadata": {k: v}                       Parquet key-value / Arrow schema metadata
//      "fields": [{"name", "type", "metadata"}] Arrow only: field metadata, e.g. the tensor's
//                                               ARROW:extension:name / ARROW:extension:metadata
//      "rows": [{"run", "layer", "batch", "sample", "dataset_index", "shape", "values"}]
//      "stats_rows": n                          stats segments only (row count)
//   }], "errors": ["..."]}
//
// Float values are JSON numbers (a float32 read as a double prints exactly),
// except NaN, Infinity and -Infinity, which are strings. Rows are sorted by
// (run, layer, batch, sample). The script checks for itself that every
// tensor has as many values as its shape holds, that Arrow tensors carry
// the arrow.fixed_shape_tensor extension with a shape, and that the readers
// of one Parquet source agree; anything wrong is listed in "errors" and the
// exit status is 1. Comparing against what was recorded is the caller's job
// (query/export_js_test.go does it).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from 'hyparquet';
import { tableFromIPC, compressionRegistry, CompressionType } from 'apache-arrow';
import lz4 from 'lz4js';
import * as fzstd from 'fzstd';

const here = path.dirname(fileURLToPath(import.meta.url));
// The installed version of a package (its package.json is not in its exports map).
const version = (pkg) => JSON.parse(fs.readFileSync(path.join(here, 'node_modules', pkg, 'package.json'), 'utf8')).version;

// apache-arrow makes typed arrays over the decoded bytes as they are, so a
// decoder's output must start 8-byte aligned (fzstd can return a view into
// a larger buffer at any offset: "start offset of BigUint64Array should be
// a multiple of 8").
const aligned = (u8) => (u8.byteOffset % 8 === 0 ? u8 : u8.slice());
compressionRegistry.set(CompressionType.LZ4_FRAME, { decode: (d) => aligned(Uint8Array.from(lz4.decompress(d))) });
compressionRegistry.set(CompressionType.ZSTD, { decode: (d) => aligned(fzstd.decompress(d)) });

const errors = [];
const fail = (msg) => errors.push(msg);

function parseArgs(argv) {
  const a = { parquet: [], dataset: [], arrow: [], segment: [], values: -1 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, '');
    const v = argv[++i];
    if (v === undefined) usage(`--${k} needs a value`);
    if (k === 'values') a.values = Number(v);
    else if (k in a) a[k].push(v);
    else usage(`unknown option ${argv[i - 1]}`);
  }
  return a;
}

function usage(msg) {
  console.error(`check_exports: ${msg}\nusage: node check_exports.mjs [--values N] [--parquet FILE] [--dataset DIR] [--arrow FILE] [--segment FILE] ...`);
  process.exit(2);
}

const num = (v) => (typeof v === 'bigint' ? Number(v) : v);
const flt = (v) => (Number.isFinite(v) ? v : String(v)); // NaN, Infinity, -Infinity as strings
const prod = (shape) => shape.reduce((p, d) => p * d, 1);

function parseShape(s, where) {
  try {
    const v = JSON.parse(s);
    if (Array.isArray(v) && v.every((d) => Number.isInteger(d) && d >= 0)) return v;
  } catch { /* reported below */ }
  fail(`${where}: shape ${JSON.stringify(s)} is not a JSON array of dimensions`);
  return null;
}

function tensorRow(where, r, shape, values, limit) {
  const vals = Array.from(values, flt);
  if (shape && vals.length !== prod(shape)) {
    fail(`${where}: batch ${r.batch} sample ${r.sample}: ${vals.length} values, shape ${JSON.stringify(shape)} holds ${prod(shape)}`);
  }
  return { ...r, shape, values: limit >= 0 ? vals.slice(0, limit) : vals };
}

function sortRows(rows) {
  const key = (r) => [r.run ?? '', r.layer ?? '', r.batch, r.sample];
  return rows.sort((x, y) => {
    const a = key(x), b = key(y);
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
    return 0;
  });
}

const sqlString = (s) => `'${s.replaceAll("'", "''")}'`;

// duckdbKV returns the key-value metadata of the Parquet files matched by glob,
// per file (DuckDB returns keys and values as BLOBs).
async function duckdbKV(con, glob) {
  const res = await con.runAndReadAll(
    `SELECT file_name, decode(key) AS k, decode(value) AS v FROM parquet_kv_metadata(${sqlString(glob)})`);
  const byFile = new Map();
  for (const r of res.getRowObjectsJS()) {
    if (!byFile.has(r.file_name)) byFile.set(r.file_name, {});
    const md = byFile.get(r.file_name);
    if (r.k in md) {
      if (md[r.k] !== r.v) fail(`duckdb ${r.file_name}: key-value metadata ${r.k} given twice with different values`);
      (md['duplicate keys'] ??= []).includes(r.k) || md['duplicate keys'].push(r.k);
    }
    md[r.k] = r.v;
  }
  return byFile;
}

async function duckdbParquet(con, file, dataset, limit) {
  const glob = dataset ? path.join(file, '**', '*.parquet') : file;
  const kv = await duckdbKV(con, glob);
  const src = dataset
    ? `read_parquet(${sqlString(glob)}, hive_partitioning = true, hive_types_autocast = false, filename = true)`
    : `(SELECT *, ${sqlString(file)} AS filename FROM read_parquet(${sqlString(file)}))`;
  const cols = dataset ? 'run, layer, ' : '';
  const res = await con.runAndReadAll(
    `SELECT ${cols}filename, batch, sample, dataset_index, tensor FROM ${src} ORDER BY ${cols}batch, sample`);
  const rows = [];
  for (const r of res.getRowObjectsJS()) {
    const md = kv.get(r.filename) ?? {};
    const where = `duckdb ${r.filename}`;
    const shape = md['actrec.shape'] !== undefined ? parseShape(md['actrec.shape'], where) : (fail(`${where}: no actrec.shape`), null);
    const base = {
      run: dataset ? r.run : md['actrec.run'], layer: dataset ? r.layer : md['actrec.layer'],
      batch: num(r.batch), sample: num(r.sample), dataset_index: num(r.dataset_index),
    };
    if (dataset && (md['actrec.run'] !== r.run || md['actrec.layer'] !== r.layer)) {
      fail(`${where}: hive partition run=${r.run} layer=${r.layer}, file metadata says run=${md['actrec.run']} layer=${md['actrec.layer']}`);
    }
    rows.push(tensorRow(where, base, shape, r.tensor, limit));
  }
  const metadata = dataset ? Object.fromEntries([...kv].map(([f, md]) => [path.relative(file, f), md])) : kv.get(file) ?? {};
  return { reader: 'duckdb', source: dataset ? 'dataset' : 'parquet', path: file, metadata, rows: sortRows(rows) };
}

function parquetFiles(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...parquetFiles(p));
    else if (e.name.endsWith('.parquet')) out.push(p);
  }
  return out.sort();
}

async function hyparquetFile(file, limit) {
  const buf = await asyncBufferFromFile(file);
  const meta = await parquetMetadataAsync(buf);
  const md = {};
  for (const { key, value } of meta.key_value_metadata ?? []) {
    if (key in md) (md['duplicate keys'] ??= []).includes(key) || md['duplicate keys'].push(key);
    md[key] = value;
  }
  const where = `hyparquet ${file}`;
  const shape = md['actrec.shape'] !== undefined ? parseShape(md['actrec.shape'], where) : (fail(`${where}: no actrec.shape`), null);
  const rows = (await parquetReadObjects({ file: buf })).map((r) => tensorRow(where, {
    run: md['actrec.run'], layer: md['actrec.layer'],
    batch: num(r.batch), sample: num(r.sample), dataset_index: num(r.dataset_index),
  }, shape, r.tensor, limit));
  delete md['ARROW:schema'];
  return { md, rows };
}

async function hyparquetParquet(file, dataset, limit) {
  const files = dataset ? parquetFiles(file) : [file];
  const metadata = {};
  const rows = [];
  for (const f of files) {
    const r = await hyparquetFile(f, limit);
    metadata[dataset ? path.relative(file, f) : f] = r.md;
    rows.push(...r.rows);
  }
  return { reader: 'hyparquet', source: dataset ? 'dataset' : 'parquet', path: file,
    metadata: dataset ? metadata : metadata[file], rows: sortRows(rows) };
}

function arrowTable(file, source, limit) {
  const t = tableFromIPC(fs.readFileSync(file));
  const metadata = Object.fromEntries(t.schema.metadata);
  const fields = t.schema.fields.map((f) => ({ name: f.name, type: String(f.type), metadata: Object.fromEntries(f.metadata) }));
  const out = { reader: 'apache-arrow', source, path: file, metadata, fields };
  const where = `apache-arrow ${file}`;
  if (source === 'segment' && metadata['actrec.kind'] === 'stats') {
    out.stats_rows = t.numRows;
    return out;
  }
  const tf = t.schema.fields.find((f) => f.name === 'tensor');
  if (!tf) {
    fail(`${where}: no tensor field`);
    return out;
  }
  const ext = tf.metadata.get('ARROW:extension:name');
  if (ext !== 'arrow.fixed_shape_tensor') fail(`${where}: tensor field extension name ${JSON.stringify(ext)}, want arrow.fixed_shape_tensor`);
  let shape = null;
  const em = tf.metadata.get('ARROW:extension:metadata');
  try {
    shape = JSON.parse(em).shape;
  } catch {
    fail(`${where}: ARROW:extension:metadata ${JSON.stringify(em)} is not JSON`);
  }
  if (shape !== null && !(Array.isArray(shape) && shape.every((d) => Number.isInteger(d) && d >= 0))) {
    fail(`${where}: extension shape ${JSON.stringify(shape)}`);
    shape = null;
  }
  if (shape && tf.type.listSize !== prod(shape)) {
    fail(`${where}: tensor is ${tf.type}, shape ${JSON.stringify(shape)} holds ${prod(shape)}`);
  }
  const col = (n) => t.getChild(n);
  const [batch, sample, ds, tensor, layer] = ['batch', 'sample', 'dataset_index', 'tensor', 'layer'].map(col);
  const rows = [];
  for (let i = 0; i < t.numRows; i++) {
    rows.push(tensorRow(where, {
      run: metadata['actrec.run'], layer: layer ? layer.get(i) : metadata['actrec.layer'],
      batch: num(batch.get(i)), sample: num(sample.get(i)), dataset_index: num(ds.get(i)),
    }, shape, tensor.get(i).toArray(), limit));
  }
  out.rows = sortRows(rows);
  return out;
}

// sameRows reports where two readers of one Parquet source disagree.
function compare(a, b) {
  const s = (t) => JSON.stringify(t.rows);
  if (a.rows.length !== b.rows.length) fail(`${a.path}: ${a.reader} read ${a.rows.length} rows, ${b.reader} ${b.rows.length}`);
  else if (s(a) !== s(b)) {
    const i = a.rows.findIndex((r, j) => JSON.stringify(r) !== JSON.stringify(b.rows[j]));
    fail(`${a.path}: ${a.reader} and ${b.reader} differ at row ${i}: ${JSON.stringify(a.rows[i]).slice(0, 200)} vs ${JSON.stringify(b.rows[i]).slice(0, 200)}`);
  }
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const out = { readers: {}, tables: [], errors };
  const guard = async (what, fn) => {
    try {
      const t = await fn();
      out.tables.push(t);
      return t;
    } catch (e) {
      fail(`${what}: ${e.message}`);
      return null;
    }
  };
  out.readers['apache-arrow'] = version('apache-arrow');
  out.readers.hyparquet = version('hyparquet');
  out.readers['@duckdb/node-api'] = version('@duckdb/node-api');
  let con = null;
  if (a.parquet.length + a.dataset.length > 0) {
    const db = await DuckDBInstance.create(':memory:');
    con = await db.connect();
    out.readers.duckdb = (await con.runAndReadAll('SELECT library_version FROM pragma_version()')).getRowObjectsJS()[0].library_version;
  }
  for (const [list, dataset] of [[a.parquet, false], [a.dataset, true]]) {
    for (const p of list) {
      const d = await guard(`duckdb ${p}`, () => duckdbParquet(con, p, dataset, a.values));
      const h = await guard(`hyparquet ${p}`, () => hyparquetParquet(p, dataset, a.values));
      if (d && h) compare(d, h);
    }
  }
  for (const p of a.arrow) await guard(`apache-arrow ${p}`, () => arrowTable(p, 'arrow', a.values));
  for (const p of a.segment) await guard(`apache-arrow ${p}`, () => arrowTable(p, 'segment', a.values));
  process.stdout.write(JSON.stringify(out, null, 1) + '\n');
  process.exitCode = errors.length ? 1 : 0;
}

await main();
