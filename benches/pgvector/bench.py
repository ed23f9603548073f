#!/usr/bin/env python3
"""pgvector search-strategy benchmark for memgate's Postgres fact store.

Driven by search_strategy.sh (which prepares Postgres and the venv); run that, not this.

For each dimension D it builds, in the throw-away database `memgate_bench`, a table shaped like
memgate's facts table, fills it with synthetic clustered vectors, and measures per-session top-k
search with two strategies:

  exact  btree (org_id, session_id) -> fetch the session's rows -> sort by cosine distance
  hnsw   HNSW (vector_cosine_ops) index scan with the session filter, pgvector 0.8 iterative scans

Each strategy is forced by dropping the other index inside the measuring transaction (the DROP is
rolled back afterwards), and EXPLAIN (ANALYZE) shows the plan that ran. Recall of HNSW is computed
against the exact strategy's result for the very same query vectors.

Data model (all vectors unit length, cosine distance):
  T global topics t (random unit vectors)
  session centroid  c = normalize(t[topic(session)] + sigma_session * n)
  fact / query      v = normalize(c + sigma_fact * n)         n ~ N(0, I/D), so |n| ~ 1
Sessions that share a topic overlap (their centroids have cosine ~ 1/(1+sigma_session^2)), so
other sessions' facts sit close to a session's own facts and the HNSW filter has real work to do.
Rows are inserted in random session order (facts of a session are scattered over the heap, as
when many sessions write over time), which is the realistic case for the exact strategy.
"""
import argparse
import datetime as dt
import json
import os
import platform
import re
import struct
import subprocess
import sys
import threading
import time

import numpy as np
import psycopg
from psycopg import sql
from psycopg.types.numeric import Int8

BTREE = "facts_org_session_idx"
HNSW = "facts_embedding_hnsw_idx"
SESSION_LABELS = {0: "none (global)", 100: "100", 1000: "1k", 10000: "10k", 100000: "100k"}


def log(msg):
    print(f"[{dt.datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


def parse_rows(spec, dims):
    """'1000000' or '384=1000000,1536=300000' -> {dim: rows}."""
    out = {}
    if "=" not in spec:
        return {d: int(spec) for d in dims}
    for part in spec.split(","):
        d, r = part.split("=")
        out[int(d)] = int(r)
    for d in dims:
        if d not in out:
            raise SystemExit(f"--rows gives no row count for dimension {d}")
    return out


def fmt_bytes(n):
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def pct(values, p):
    return float(np.percentile(np.asarray(values), p))


def loadavg():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


class Bench:
    def __init__(self, args):
        self.a = args
        self.admin_url = f"{args.base_url}/postgres"
        self.url = f"{args.base_url}/{args.db}"
        self.plans = []  # (title, text)
        self.results = {"runs": []}

    # ---------------------------------------------------------------- database
    def recreate_db(self):
        with psycopg.connect(self.admin_url, autocommit=True) as c:
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.a.db)))
            c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.a.db)))
        with psycopg.connect(self.url, autocommit=True) as c:
            c.execute("CREATE EXTENSION IF NOT EXISTS vector")

    def drop_db(self):
        with psycopg.connect(self.admin_url, autocommit=True) as c:
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.a.db)))

    def connect(self, autocommit=True):
        c = psycopg.connect(self.url, autocommit=autocommit)
        c.prepare_threshold = None  # unnamed statements: every query gets a custom plan
        return c

    # ---------------------------------------------------------------- data
    def layout(self, rows):
        """Session sizes, ids, orgs and topics; identical across dimensions for the same rows."""
        rng = np.random.default_rng(self.a.seed)
        measured = [s for s in (100, 1000, 10000, 100000) if s <= 0.4 * rows]
        sizes = list(measured)
        rest = rows - sum(sizes)
        while rest > 0:
            s = int(rng.integers(10, 201))
            if rest - s < 10:
                s = rest
            sizes.append(s)
            rest -= s
        n = len(sizes)
        order = rng.permutation(n)  # session ids are not in size order
        session_ids = np.empty(n, dtype=np.int64)
        session_ids[order] = np.arange(1, n + 1) + 1000
        orgs = rng.integers(0, self.a.orgs, n)
        orgs[: len(measured)] = np.arange(len(measured)) % self.a.orgs  # measured sessions: distinct orgs
        topics = rng.integers(0, self.a.topics, n)
        row_session = np.repeat(np.arange(n), sizes)
        rng.shuffle(row_session)
        return dict(measured=measured, sizes=np.asarray(sizes), session_ids=session_ids, orgs=orgs,
                    topics=topics, row_session=row_session)

    def space(self, dim):
        """Latent dimension r and the D x r orthonormal map (None when the data is plain D-dim)."""
        r = self.a.latent_dim
        if r <= 0 or r >= dim:
            return dim, None
        rng = np.random.default_rng([self.a.seed, dim, 0])
        q, _ = np.linalg.qr(rng.standard_normal((dim, r)))
        return r, q.astype(np.float32)

    def embed(self, lat, basis, dim, rng):
        """Latent unit vectors (m x r) -> normalised D-dim embeddings."""
        if basis is None:
            return lat
        v = lat @ basis.T
        if self.a.iso_noise > 0:
            v += self.a.iso_noise * (rng.standard_normal(v.shape, dtype=np.float32) / np.sqrt(dim))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        return v

    def centroids(self, lay, dim):
        r, _ = self.space(dim)
        rng = np.random.default_rng([self.a.seed, dim, 1])
        t = rng.standard_normal((self.a.topics, r), dtype=np.float32)
        t /= np.linalg.norm(t, axis=1, keepdims=True)
        n = rng.standard_normal((len(lay["sizes"]), r), dtype=np.float32) / np.sqrt(r)
        c = t[lay["topics"]] + self.a.sigma_session * n
        c /= np.linalg.norm(c, axis=1, keepdims=True)
        return c

    def near(self, cents, idx, dim, rng):
        """Fact or query vectors near the given sessions' centroids, as D-dim embeddings."""
        r, basis = self.space(dim)
        v = cents[idx] + self.a.sigma_fact * (rng.standard_normal((len(idx), r), dtype=np.float32) / np.sqrt(r))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        return self.embed(v, basis, dim, rng)

    def load(self, dim, rows, lay, cents):
        with self.connect() as c:
            c.execute("DROP TABLE IF EXISTS facts")
            c.execute(sql.SQL(
                "CREATE TABLE facts (id bigserial PRIMARY KEY, org_id text NOT NULL, session_id bigint NOT NULL, "
                "text text NOT NULL, embedding vector({}) NOT NULL, updated_at bigint NOT NULL)").format(sql.Literal(dim)))
        txt_len = 80
        dtype = np.dtype([
            ("nf", ">i2"),
            ("l1", ">i4"), ("org", "S6"),
            ("l2", ">i4"), ("sid", ">i8"),
            ("l3", ">i4"), ("txt", f"S{txt_len}"),
            ("l4", ">i4"), ("vd", ">i2"), ("vu", ">i2"), ("vec", ">f4", (dim,)),
            ("l5", ">i4"), ("upd", ">i8"),
        ])
        rng = np.random.default_rng([self.a.seed, dim, 2])
        org_names = np.array([f"org-{i:02d}".encode() for i in range(self.a.orgs)], dtype="S6")
        chunk = 20000
        t0 = time.monotonic()
        with self.connect() as c, c.cursor() as cur:
            with cur.copy("COPY facts (org_id, session_id, text, embedding, updated_at) FROM STDIN (FORMAT BINARY)") as cp:
                cp.write(b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0))
                for start in range(0, rows, chunk):
                    idx = lay["row_session"][start:start + chunk]
                    m = len(idx)
                    v = self.near(cents, idx, dim, rng)
                    a = np.zeros(m, dtype=dtype)
                    a["nf"] = 5
                    a["l1"], a["l2"], a["l3"], a["l4"], a["l5"] = 6, 8, txt_len, 4 + 4 * dim, 8
                    a["org"] = org_names[lay["orgs"][idx]]
                    sids = lay["session_ids"][idx]
                    a["sid"] = sids
                    a["txt"] = [(b"fact %09d of session %d: the user prefers window seats and dark mode, noted"
                                 % (start + i, s)).ljust(txt_len, b".")[:txt_len] for i, s in enumerate(sids.tolist())]
                    a["vd"] = dim
                    a["vec"] = v
                    a["upd"] = 1_700_000_000_000 + (start + np.arange(m)) * 1000
                    cp.write(a.tobytes())
                cp.write(struct.pack(">h", -1))
        load_s = time.monotonic() - t0
        log(f"loaded {rows} rows in {load_s:.1f}s")
        with self.connect() as c:
            t0 = time.monotonic()
            c.execute(f"CREATE INDEX {BTREE} ON facts (org_id, session_id)")
            btree_s = time.monotonic() - t0
            t0 = time.monotonic()
            c.execute("VACUUM (ANALYZE) facts")
            vacuum_s = time.monotonic() - t0
            c.execute("CHECKPOINT")
            sizes = c.execute(
                "SELECT pg_table_size('facts'), pg_relation_size('facts'), "
                "pg_relation_size(%s), count(*) FROM facts", (BTREE,)).fetchone()
        log(f"btree {btree_s:.1f}s, vacuum analyze {vacuum_s:.1f}s, table {fmt_bytes(sizes[0])}")
        return dict(load_s=load_s, btree_s=btree_s, vacuum_s=vacuum_s, table_bytes=sizes[0],
                    heap_bytes=sizes[1], btree_bytes=sizes[2], rows=sizes[3])

    # ---------------------------------------------------------------- HNSW build
    def build_hnsw(self, dim, rows):
        mwm = self.a.maintenance_work_mem
        if mwm == "auto":
            mwm = "8GB" if dim > 768 else "4GB"
        budget = self.a.build_budget_min * 60
        notices = []
        conn = self.connect()
        conn.execute(f"DROP INDEX IF EXISTS {HNSW}")
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        conn.execute(sql.SQL("SET maintenance_work_mem = {}").format(sql.Literal(mwm)))
        conn.execute(sql.SQL("SET max_parallel_maintenance_workers = {}").format(sql.Literal(self.a.parallel_workers)))
        conn.execute("SET statement_timeout = 0")
        pid = conn.info.backend_pid
        state = {"aborted": None, "progress": []}
        stop = threading.Event()
        t0 = time.monotonic()

        def monitor():
            with psycopg.connect(self.url, autocommit=True) as mon:
                while not stop.wait(20):
                    el = time.monotonic() - t0
                    r = mon.execute(
                        "SELECT phase, tuples_done, blocks_done, blocks_total FROM pg_stat_progress_create_index "
                        "WHERE pid = %s", (pid,)).fetchone()
                    if r is None:
                        continue
                    phase, tdone, bdone, btotal = r
                    frac = max(tdone / rows if rows else 0, bdone / btotal if btotal else 0)
                    state["progress"].append((round(el), phase, tdone, bdone, btotal))
                    if int(el) // 60 != int(el - 20) // 60:
                        log(f"  hnsw build {el / 60:.1f} min: {phase}, tuples {tdone}/{rows}, "
                            f"blocks {bdone}/{btotal}, load {loadavg():.1f}")
                    # HNSW insertion gets slower as the graph grows; 1.25 is a margin on a linear projection.
                    if el > 240 and 0.02 < frac < 0.98:
                        projected = el / frac * 1.25
                        if projected > budget:
                            state["aborted"] = dict(elapsed_s=el, frac=frac, projected_s=projected)
                            log(f"  projected build time {projected / 60:.0f} min > budget "
                                f"{budget / 60:.0f} min after {el / 60:.1f} min ({frac:.1%} done): cancelling")
                            mon.execute("SELECT pg_cancel_backend(%s)", (pid,))
                            return
                    if el > budget:
                        state["aborted"] = dict(elapsed_s=el, frac=frac, projected_s=None)
                        log("  build exceeded budget: cancelling")
                        mon.execute("SELECT pg_cancel_backend(%s)", (pid,))
                        return

        th = threading.Thread(target=monitor, daemon=True)
        th.start()
        log(f"building HNSW (m=16, ef_construction=64, maintenance_work_mem={mwm}, "
            f"max_parallel_maintenance_workers={self.a.parallel_workers})")
        try:
            conn.execute(f"CREATE INDEX {HNSW} ON facts USING hnsw (embedding vector_cosine_ops) "
                         "WITH (m = 16, ef_construction = 64)")
            ok = True
        except psycopg.errors.QueryCanceled:
            ok = False
        build_s = time.monotonic() - t0
        stop.set()
        th.join()
        res = dict(build_s=build_s, maintenance_work_mem=mwm, notices=notices, aborted=state["aborted"],
                   progress=state["progress"][-5:])
        if ok:
            conn.execute("CHECKPOINT")
            res["hnsw_bytes"] = conn.execute("SELECT pg_relation_size(%s)", (HNSW,)).fetchone()[0]
            conn.execute("ANALYZE facts")
            log(f"HNSW built in {build_s:.0f}s, {fmt_bytes(res['hnsw_bytes'])}; notices: {notices}")
        else:
            log(f"HNSW build cancelled after {build_s:.0f}s")
        conn.close()
        return ok, res

    # ---------------------------------------------------------------- queries
    def query_vectors(self, dim, lay, cents, s_idx, n):
        rng = np.random.default_rng([self.a.seed, dim, 3, int(lay["session_ids"][s_idx])])
        q = self.near(cents, np.full(n, s_idx), dim, rng)
        return ["[" + ",".join(f"{x:.7g}" for x in row.tolist()) + "]" for row in q]

    QUERY = ("SELECT id FROM facts WHERE org_id = %s AND session_id = %s "
             "ORDER BY embedding <=> %s::vector LIMIT %s")
    GLOBAL = "SELECT id FROM facts ORDER BY embedding <=> %s::vector LIMIT %s"

    def run_global(self, conn, vecs):
        """Unfiltered top-k over the whole table: calibrates how hard the data is for HNSW."""
        lat, ids = [], []
        for v in vecs:
            t0 = time.perf_counter()
            ids.append([r[0] for r in conn.execute(self.GLOBAL, (v, self.a.k)).fetchall()])
            lat.append((time.perf_counter() - t0) * 1000)
        plan = self.short("\n".join(r[0] for r in conn.execute("EXPLAIN " + self.GLOBAL, (vecs[0], self.a.k)).fetchall()))
        return lat, ids, plan

    def explain(self, conn, params, analyze=True):
        opts = "ANALYZE, BUFFERS" if analyze else "COSTS"
        rows = conn.execute(f"EXPLAIN ({opts}) " + self.QUERY, params).fetchall()
        return self.short("\n".join(r[0] for r in rows))

    @staticmethod
    def short(plan):
        """Plans with the query vector literal elided."""
        return re.sub(r"'\[[-0-9.e,]+\]'", "'[...]'", plan)

    @staticmethod
    def plan_kind(plan):
        if re.search(rf"Index Scan using {HNSW}", plan):
            return "hnsw index scan"
        if re.search(rf"Bitmap Index Scan on {BTREE}", plan):
            return "btree bitmap scan + sort"
        if re.search(rf"Index (Only )?Scan using {BTREE}", plan):
            return "btree index scan + sort"
        if "Seq Scan" in plan:
            return "seq scan + sort"
        return "other"

    def run_set(self, conn, org, sid, vecs, warmup):
        k = self.a.k
        for v in vecs[:warmup]:
            conn.execute(self.QUERY, (org, sid, v, k)).fetchall()
        lat, ids = [], []
        for v in vecs[warmup:]:
            t0 = time.perf_counter()
            rows = conn.execute(self.QUERY, (org, sid, v, k)).fetchall()
            lat.append((time.perf_counter() - t0) * 1000)
            ids.append([r[0] for r in rows])
        return lat, ids

    def measure(self, dim, rows, lay, cents, info):
        a = self.a
        targets = []
        for size in lay["measured"]:
            s_idx = int(np.nonzero(lay["sizes"] == size)[0][0])
            org = f"org-{int(lay['orgs'][s_idx]):02d}"
            sid = Int8(int(lay["session_ids"][s_idx]))  # bigint parameter, as the application sends it
            vecs = self.query_vectors(dim, lay, cents, s_idx, a.warmup + a.queries)
            targets.append((size, org, sid, vecs))
        out = []
        grng = np.random.default_rng([a.seed, dim, 4])
        gidx = grng.integers(0, len(lay["sizes"]), a.global_queries)
        gq = self.near(cents, gidx, dim, grng)
        gvecs = ["[" + ",".join(f"{x:.7g}" for x in row.tolist()) + "]" for row in gq]

        # --- strategy A: exact (HNSW dropped inside the transaction) ---
        exact_ids = {}
        conn = self.connect(autocommit=False)
        if info.get("hnsw_ok"):
            conn.execute(f"DROP INDEX {HNSW}")
        conn.execute("SET LOCAL jit = off")
        conn.execute("SET LOCAL enable_seqscan = off")
        for size, org, sid, vecs in targets:
            plan = self.explain(conn, (org, sid, vecs[0], a.k))
            self.plans.append((f"D={dim} rows={rows} session={SESSION_LABELS[size]} strategy=exact", plan))
            t0 = time.monotonic()
            lat, ids = self.run_set(conn, org, sid, vecs, a.warmup)
            exact_ids[size] = ids
            r = dict(dim=dim, rows=rows, session=size, strategy="exact", config="btree+sort",
                     p50=pct(lat, 50), p95=pct(lat, 95), mean=float(np.mean(lat)), recall=1.0,
                     full=float(np.mean([len(x) == min(a.k, size) for x in ids])), plan=self.plan_kind(plan),
                     load=loadavg())
            out.append(r)
            log(f"  exact   {SESSION_LABELS[size]:>5}: p50 {r['p50']:.2f} ms p95 {r['p95']:.2f} ms "
                f"[{r['plan']}] ({time.monotonic() - t0:.0f}s)")
        if gvecs:
            conn.execute("SET LOCAL enable_seqscan = on")
            lat, gexact, plan = self.run_global(conn, gvecs)
            out.append(dict(dim=dim, rows=rows, session=0, strategy="exact", config="full scan", p50=pct(lat, 50),
                            p95=pct(lat, 95), mean=float(np.mean(lat)), recall=1.0, full=1.0,
                            plan=self.plan_kind(plan), load=loadavg()))
            log(f"  exact global (no filter): p50 {out[-1]['p50']:.0f} ms over {len(gvecs)} queries")
        conn.rollback()
        conn.close()

        if not info.get("hnsw_ok"):
            return out

        # --- strategy B: HNSW (btree dropped inside the transaction) ---
        configs = ([("relaxed_order", ef) for ef in a.ef_search] + [("strict_order", a.ef_search[0])]
                   + [("off", a.ef_search[0])])
        conn = self.connect(autocommit=False)
        conn.execute(f"DROP INDEX {BTREE}")
        conn.execute("SET LOCAL jit = off")
        conn.execute("SET LOCAL enable_seqscan = off")
        for mode, ef in configs:
            conn.execute(sql.SQL("SET LOCAL hnsw.iterative_scan = {}").format(sql.Literal(mode)))
            conn.execute(sql.SQL("SET LOCAL hnsw.ef_search = {}").format(sql.Literal(ef)))
            for size, org, sid, vecs in targets:
                plan = self.explain(conn, (org, sid, vecs[0], a.k))
                if mode != "off" or size == lay["measured"][0] and ef == a.ef_search[0]:
                    self.plans.append((f"D={dim} rows={rows} session={SESSION_LABELS[size]} strategy=hnsw "
                                       f"iterative_scan={mode} ef_search={ef}", plan))
                removed = re.search(r"Rows Removed by Filter: (\d+)", plan)
                t0 = time.monotonic()
                lat, ids = self.run_set(conn, org, sid, vecs, a.warmup)
                rec = [len(set(h) & set(e)) / len(e) for h, e in zip(ids, exact_ids[size]) if e]
                r = dict(dim=dim, rows=rows, session=size, strategy="hnsw", config=f"{mode} ef={ef}",
                         p50=pct(lat, 50), p95=pct(lat, 95), mean=float(np.mean(lat)),
                         recall=float(np.mean(rec)), recall_min=float(np.min(rec)),
                         recall_zero=float(np.mean([x == 0 for x in rec])),
                         full=float(np.mean([len(x) == min(a.k, size) for x in ids])),
                         plan=self.plan_kind(plan),
                         removed_by_filter=int(removed.group(1)) if removed else 0, load=loadavg())
                out.append(r)
                log(f"  hnsw {mode:>13} ef={ef:<3} {SESSION_LABELS[size]:>5}: p50 {r['p50']:.2f} ms "
                    f"p95 {r['p95']:.2f} ms recall {r['recall']:.3f} full {r['full']:.0%} "
                    f"[{r['plan']}, filtered {r['removed_by_filter']}] ({time.monotonic() - t0:.0f}s)")
            if gvecs and mode == "relaxed_order":  # no filter, so the iterative mode does not matter
                lat, gids, plan = self.run_global(conn, gvecs)
                rec = [len(set(h) & set(e)) / len(e) for h, e in zip(gids, gexact)]
                out.append(dict(dim=dim, rows=rows, session=0, strategy="hnsw", config=f"ef={ef}",
                                p50=pct(lat, 50), p95=pct(lat, 95), mean=float(np.mean(lat)),
                                recall=float(np.mean(rec)), recall_min=float(np.min(rec)), full=1.0,
                                plan=self.plan_kind(plan), load=loadavg()))
                log(f"  hnsw global (no filter) ef={ef}: recall {out[-1]['recall']:.3f}")
        conn.rollback()
        conn.close()

        # --- what the planner picks on its own with both indexes present ---
        planner = []
        with self.connect() as c:
            c.execute("SET hnsw.iterative_scan = relaxed_order")
            c.execute(sql.SQL("SET hnsw.ef_search = {}").format(sql.Literal(a.ef_search[0])))
            c.execute("PREPARE q(text, bigint, vector, int) AS SELECT id FROM facts "
                      "WHERE org_id = $1 AND session_id = $2 ORDER BY embedding <=> $3 LIMIT $4")
            for size, org, sid, vecs in targets:
                custom = self.explain(c, (org, sid, vecs[0], a.k), analyze=False)
                c.execute("SET plan_cache_mode = force_generic_plan")
                generic = self.short("\n".join(r[0] for r in c.execute(sql.SQL("EXPLAIN EXECUTE q({}, {}, {}, {})").format(
                    sql.Literal(org), sql.Literal(sid), sql.Literal(vecs[0]), sql.Literal(a.k))).fetchall()))
                c.execute("RESET plan_cache_mode")
                planner.append(dict(dim=dim, rows=rows, session=size, custom=self.plan_kind(custom),
                                    generic=self.plan_kind(generic), jit="JIT:" in custom))
                self.plans.append((f"D={dim} rows={rows} session={SESSION_LABELS[size]} planner's own choice, "
                                   "both indexes, custom plan, server default jit", custom))
                log(f"  planner {SESSION_LABELS[size]:>5}: custom plan -> {planner[-1]['custom']}, "
                    f"generic plan -> {planner[-1]['generic']}, jit={planner[-1]['jit']}")
        info["planner"] = planner
        return out

    # ---------------------------------------------------------------- driver
    def run_dim(self, dim, rows, note=None):
        log(f"=== D={dim}, rows={rows} ===")
        lay = self.layout(rows)
        cents = self.centroids(lay, dim)
        info = dict(dim=dim, rows=rows, sessions=int(len(lay["sizes"])), note=note,
                    measured=[int(s) for s in lay["measured"]])
        info.update(self.load(dim, rows, lay, cents))
        ok, b = self.build_hnsw(dim, rows)
        info["hnsw"] = b
        info["hnsw_ok"] = ok
        if not ok and b["aborted"] and b["aborted"].get("projected_s") and not note:
            # Build would not fit the budget: record the attempt, retry at the largest size projected to fit.
            ab = b["aborted"]
            fit = rows * (self.a.build_budget_min * 60) / ab["projected_s"] * 0.85
            smaller = max(100_000, int(fit // 100_000) * 100_000)
            info["fallback_rows"] = smaller
            self.results["runs"].append(dict(info=info, rows_out=[]))
            with self.connect() as c:
                c.execute("DROP TABLE facts")
            msg = (f"HNSW build at {rows} rows was projected to take {ab['projected_s'] / 60:.0f} min "
                   f"(cancelled after {ab['elapsed_s'] / 60:.1f} min at {ab['frac']:.0%}), over the "
                   f"{self.a.build_budget_min:.0f} min budget; measured at {smaller} rows instead")
            log(msg)
            return self.run_dim(dim, smaller, note=msg)
        rows_out = self.measure(dim, rows, lay, cents, info)
        self.results["runs"].append(dict(info=info, rows_out=rows_out))
        with self.connect() as c:
            c.execute("DROP TABLE facts")
        self.write()

    def machine(self):
        with psycopg.connect(self.admin_url) as c:
            pg = c.execute("SELECT version()").fetchone()[0]
            settings = dict(c.execute(
                "SELECT name, current_setting(name) FROM pg_settings WHERE name IN "
                "('shared_buffers','effective_cache_size','work_mem','max_parallel_workers_per_gather',"
                "'random_page_cost','jit','max_wal_size')").fetchall())
        with psycopg.connect(self.url) as c:
            c.execute("SELECT '[1]'::vector")  # loads the library, so its hnsw.* settings show
            vec = c.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
            hs = dict(c.execute("SELECT name, setting FROM pg_settings WHERE name LIKE 'hnsw.%'").fetchall())
        mem = open("/proc/meminfo").readline().split()[1]
        cpu = ""
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        return dict(nproc=os.cpu_count(), cpu=cpu, mem_gib=round(int(mem) / 1024 / 1024, 1), pg=pg, pgvector=vec,
                    kernel=platform.release(), settings=settings, hnsw_settings=hs)

    def write(self):
        a = self.a
        if "machine" not in self.results:
            self.results["machine"] = self.machine()
        m = self.results["machine"]
        L = []
        L.append(f"# pgvector search strategy benchmark ({self.results['started'][:10]})\n")
        L.append(f"Command: `{a.command}`  ")
        L.append(f"Started {self.results['started']}, "
                 f"{'finished ' + self.results['finished'] if 'finished' in self.results else 'in progress'}.\n")
        L.append(f"Machine: `nproc`={m['nproc']} ({m['cpu']}), RAM {m['mem_gib']} GiB, kernel {m['kernel']}; "
                 f"shared with another engineer's builds/tests, so numbers are noisy (load average column).  ")
        L.append(f"{m['pg']}; pgvector {m['pgvector']}.  ")
        L.append("Server settings (unchanged, session-level SETs only): " +
                 ", ".join(f"{k}={v}" for k, v in sorted(m["settings"].items())) + "; " +
                 ", ".join(f"{k}={v}" for k, v in sorted(m["hnsw_settings"].items())) + ".  ")
        L.append(f"Data: {a.orgs} orgs, {a.topics} topics, sigma_session={a.sigma_session}, "
                 f"sigma_fact={a.sigma_fact}, seed {a.seed}; measured sessions of "
                 "exactly 100/1k/10k/100k facts, the rest 10-200 facts; rows inserted in random session order. "
                 f"Queries: top-{a.k}, {a.queries} timed queries per cell after {a.warmup} warm-up queries, "
                 "query vectors drawn near the session centroid like the facts; latency is the client round "
                 "trip (psycopg, unnamed statement, so it includes planning), jit=off, enable_seqscan=off.\n")
        L.append("## Load and build\n")
        L.append("| dim | rows | sessions | load (COPY) s | btree s | table size | btree size | HNSW build s | HNSW size | note |")
        L.append("|---|---|---|---|---|---|---|---|---|---|")
        for run in self.results["runs"]:
            i = run["info"]
            h = i["hnsw"]
            L.append(f"| {i['dim']} | {i['rows']} | {i['sessions']} | {i['load_s']:.0f} | {i['btree_s']:.1f} | "
                     f"{fmt_bytes(i['table_bytes'])} | {fmt_bytes(i['btree_bytes'])} | "
                     f"{h['build_s']:.0f}{'' if i['hnsw_ok'] else ' (cancelled)'} | "
                     f"{fmt_bytes(h['hnsw_bytes']) if 'hnsw_bytes' in h else '-'} | "
                     f"{'; '.join(h['notices']) or ''}{' fell back to ' + str(i['fallback_rows']) + ' rows' if 'fallback_rows' in i else ''} |")
        L.append("")
        L.append("## Search latency and recall (top-10, one session)\n")
        L.append("p50/p95 in ms; `x exact` = p50 of this row / p50 of exact for the same session; recall@10 "
                 "against the exact result (mean, min, share of queries with recall 0 when any); `full` = share of queries that returned 10 rows; "
                 "`filtered` = rows removed by the session filter in one EXPLAIN ANALYZE.\n")
        L.append("| dim | rows | session | strategy | config | p50 | p95 | x exact | recall@10 (min) | full | plan | filtered | load |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for run in self.results["runs"]:
            rows_out = run["rows_out"]
            base = {(r["session"]): r["p50"] for r in rows_out if r["strategy"] == "exact"}
            for r in sorted(rows_out, key=lambda r: (r["session"], r["strategy"] != "exact")):
                L.append(f"| {r['dim']} | {r['rows']} | {SESSION_LABELS[r['session']]} | {r['strategy']} | "
                         f"{r['config']} | {r['p50']:.2f} | {r['p95']:.2f} | "
                         f"{r['p50'] / base[r['session']]:.2f} | "
                         f"{r['recall']:.3f}{' (' + format(r['recall_min'], '.1f') + ')' if 'recall_min' in r else ''}"
                         f"{', ' + format(r['recall_zero'], '.0%') + ' zero' if r.get('recall_zero') else ''} | "
                         f"{r['full']:.0%} | {r['plan']} | {r.get('removed_by_filter', '')} | {r['load']:.1f} |")
        L.append("")
        L.append("## Planner's own choice with both indexes present\n")
        L.append("hnsw.iterative_scan=relaxed_order; custom = plan for the actual values (what an unnamed or "
                 "re-planned statement gets), generic = plan a prepared statement may switch to after 5 runs; "
                 "jit = the custom plan would JIT-compile under the server's default jit settings.\n")
        L.append("| dim | rows | session | custom plan | generic plan | jit |")
        L.append("|---|---|---|---|---|---|")
        for run in self.results["runs"]:
            for p in run["info"].get("planner", []):
                L.append(f"| {p['dim']} | {p['rows']} | {SESSION_LABELS[p['session']]} | {p['custom']} | "
                         f"{p['generic']} | {p['jit']} |")
        L.append("")
        notes = [run["info"]["note"] for run in self.results["runs"] if run["info"].get("note")]
        if notes:
            L.append("## Notes\n")
            L.extend(f"- {n}" for n in notes)
            L.append("")
        L.append("## Sample plans\n")
        wanted = [t for t in self.plans if "strategy=exact" in t[0] and "session=10k" in t[0]][:1]
        wanted += [t for t in self.plans if "iterative_scan=relaxed_order" in t[0] and "session=10k" in t[0]][:1]
        wanted += [t for t in self.plans if "iterative_scan=off" in t[0]][:1]
        for title, plan in wanted:
            L.append(f"{title}:\n\n```\n{plan}\n```\n")
        L.append(f"All plans: `{os.path.basename(a.plans_out)}`.\n")
        with open(a.out, "w") as f:
            f.write("\n".join(L))
        with open(a.plans_out, "w") as f:
            for title, plan in self.plans:
                f.write(f"-- {title}\n{plan}\n\n")
        with open(a.json_out, "w") as f:
            json.dump(self.results, f, indent=1, default=str)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base-url", default="postgres://postgres@127.0.0.1:5432")
    p.add_argument("--db", default="memgate_bench")
    p.add_argument("--dims", default="384,1536")
    p.add_argument("--rows", default="1000000", help="'N' or '384=N,1536=M'")
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--global-queries", type=int, default=10,
                   help="unfiltered queries that calibrate HNSW recall on this data (0: skip)")
    p.add_argument("--ef-search", default="40,100,200")
    p.add_argument("--build-budget-min", type=float, default=60)
    p.add_argument("--orgs", type=int, default=16)
    p.add_argument("--topics", type=int, default=64)
    p.add_argument("--sigma-session", type=float, default=0.3)
    p.add_argument("--sigma-fact", type=float, default=1.0)
    p.add_argument("--latent-dim", type=int, default=64,
                   help="intrinsic dimension of the data (0: isotropic noise in all D dimensions)")
    p.add_argument("--iso-noise", type=float, default=0.1, help="isotropic D-dim noise added to latent data")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--maintenance-work-mem", default="auto")
    p.add_argument("--parallel-workers", type=int, default=2)
    p.add_argument("--keep-db", action="store_true")
    p.add_argument("--out", required=True)
    p.add_argument("--command", default=" ".join(sys.argv))
    a = p.parse_args()
    if a.db in ("test", "postgres", "template0", "template1"):
        raise SystemExit(f"refusing to use database {a.db!r}")
    a.dims = [int(d) for d in a.dims.split(",")]
    a.ef_search = [int(e) for e in a.ef_search.split(",")]
    a.rows = parse_rows(a.rows, a.dims)
    a.parallel_workers = min(a.parallel_workers, 2)
    stem = a.out[:-3] if a.out.endswith(".md") else a.out
    a.plans_out, a.json_out = stem + "-plans.txt", stem + ".json"
    b = Bench(a)
    b.results["started"] = dt.datetime.now().isoformat(timespec="seconds")
    b.results["args"] = {k: v for k, v in vars(a).items()}
    b.recreate_db()
    try:
        for d in a.dims:
            b.run_dim(d, a.rows[d])
        b.results["finished"] = dt.datetime.now().isoformat(timespec="seconds")
        b.write()
        print(open(a.out).read())
    finally:
        if not a.keep_db:
            b.drop_db()


if __name__ == "__main__":
    main()
