"""The Spark engine: score a table that outgrows one machine with the same
signals and the same profile, partition by partition.

How the work is split (see `engine.py`):

* The trusted side is a stored profile (`poison-check fit`), or a profile
  fitted on the driver from a reference table, or, in a self-check, from a
  bounded random sample of the batch. Its bytes are captured in the
  `mapInPandas` closure (no broadcast: Spark Connect has none); each Python
  worker loads it once (`scoring.py`).
* Each partition is scored by the core: an `Analysis` against the profile,
  each per-row signal's `score`, its batch scores on the scale of
  `reference_scores`, conformal p-values against them (within the row's
  class where the signal's `calibration` is "class"), and the combination
  (`verdicts.combine`) of a row's p-values.
* The driver decides from small aggregates only (`decide.py`): the row
  count, each signal's p-values <= its alpha0 (Higher Criticism and the closed-testing bound
  per signal, the Benjamini-Hochberg threshold of the combined p-value),
  group counts and per-source counts from `groupBy`. It never collects the
  table; it holds O(rows) float64 arrays (the p-values padded with ones) for
  the batch tests only.

Where the Spark result is an approximation of the pandas one:

1. Signals run: the per-row signals (label consistency, outliers,
   influence), whose `score` reads nothing but the row and the trusted side,
   then the batch families: near duplicates (with a trusted side only) and
   sources from aggregates (`batch.py`, items 10 and 11), spectral
   signatures and feature clustering (split conformal, `structure.py`) and
   trigger patterns (`triggers.py`) (`batch.py`, items 8 and 9), and
   clean-label collisions (with a trusted side only: `collisions.py`,
   item 14).
2. Row scores: equal to the pandas engine's `score` against the same
   profile for outliers and influence (fold model and tie placement drawn
   by hashing the row's values; small classes ranked among their trusted
   rows, never among the chunk's); label consistency within Spearman
   0.999 of it (iris in 3 chunks). Rows are flagged from the p-values of
   the whole batch (BH), never from per-chunk flags.
3. Conformal p-values: the same formula; the random tie-break U_j is drawn
   per partition (seeded by the partition id), so a row's p-value lies in
   the same interval [above, above + equal + 1] / (n_ref + 1) as in-process
   with another draw: at most 1 / (n_ref + 1) apart when no trusted score
   ties with the row's, up to (equal + 1) / (n_ref + 1) when `equal` do.
   Ties inside a partition are shuffled together ("shared"), ties across
   partitions independently (same marginal law; the joint law differs only
   with ties). Scores capped at 1.0 (influence, outliers) tie on many rows
   of small or integer-valued tables (wisconsin, 20% flips: 121 of 546 batch
   rows at influence 1.0, p-values up to 0.15 apart), so there the rows BH
   flags and a gate near its level are partly the draw, on either engine:
   with a 10% bad source the pandas engine failed wisconsin's influence gate,
   which fails in 1 of 40 redraws of its own tie-breaks, and Spark passed it
   (benchmarks/results/spark_agreement.md).
4. Self-check: the profile is fitted on a random sample of at most
   `sample_rows` batch rows; every batch row (the sampled ones included,
   which are then scored against a trusted side that contains them) is
   scored against it. The pandas self-check scores each row out of fold
   instead.
5. Decisions: the config's `verdicts` levels as in the pandas checkpoint
   (BH at q on the combined p-values; per signal a Higher Criticism gate and
   the closed-testing lower bound at alpha / F over min_effect), where F
   counts only the signals this engine runs.
6. Row ids: without an id column, `row_index` is the row's position in the
   order Spark reads (partition offsets from a count per partition): the
   pandas engine's 0-based index for one file, but for a folder Spark orders
   the files by size, so there it is a numbering that differs from the
   pandas engine's. Give an id column. Ids are not checked for uniqueness
   across partitions.
7. Monte Carlo null of Higher Criticism: simulated for the groups in key
   order (classes by code, then the pooled group), so its p-value can differ
   from an in-process run that met the classes in another order by the
   simulation's own noise (the test stays exactly valid).
8. Spectral signatures and feature clustering: the split halves are a fair
   coin per row (Spark's `rand(seed)`, persisted with the scored table), not
   the pandas engine's exact half of a permutation: both are independent of
   the data, so the split-conformal p-values stay exactly valid, but the
   halves differ, so row p-values are other draws of the same law (on the
   1,500-row embedding backdoor test both engines fail the same gates with
   lower bounds within a few rows; clean rows' p-values do not correlate
   between engines, as two pandas runs with other halves would not). So a
   gate near its level can go either way: on splice with a 5% near-copy
   flood Spark failed the spectral gate (lower bound 27 rows) and pandas
   passed it (7), but pandas fails it with 4 of 6 other split seeds (0-52);
   on breast_cancer with 10% flips pandas failed feature clustering with
   its seed and passes it with 7 of 7 others, as Spark did. On twonorm
   with 5% flips Spark's feature-clustering lower bounds over 5 half seeds
   (0-51, 1 failing) lay below pandas' over 6 split seeds (27-44, 4
   failing): possibly a little less power on Spark, not settled. Given
   the halves the computation is the core's: spectral directions from exact
   float64 class sums per half (the core's `_direction` up to rounding:
   tested to the conformal interval), 2-means on a uniform sample of at most
   `max_fit_rows` rows of the half (the core samples as many; all rows when
   the half is smaller). The score columns differ by design: `spectral_score`
   is tau on the whole batch class's direction over the class's largest tau
   for every class of >= 20 rows (the pandas engine gives that only to
   classes whose tail test separates, 0 elsewhere; equal there to 1e-4);
   `feature_clustering_score` is the split pull (d_large - d_small) /
   (d_large + d_small) mapped to [0, 1] (the pandas engine scores only the
   members of a confirmed small cluster). The gate omits Storey's
   `estimated_share` (it needs every p-value). Their p-values enter `poison_p` (so BH
   flags), but `poison_score` ranks by the per-row families' ranking
   p-values only.
9. Trigger patterns: the core's search runs on the driver on the whole batch
   up to `triggers.SEARCH_ROWS` rows, else on a uniform random sample of that
   many (fewer carrying rows: a rarer trigger can be missed); its confirmed
   patterns flag, on the executors, every row of the batch that carries the
   pattern with its label (the core keeps the lead's rows instead when the
   refined pattern holds under half of them), and their support is counted
   over the whole batch.
10. Near duplicates (`near_duplicates.py`): the pandas engine's density
   test (hypergeometric row p-values given batch/reference partner counts,
   label-permutation test of batch-batch close pairs, closed-testing bound
   over the row p-values at alpha / F), with these differences. Close pairs
   come from two shifted grids (cell side 2 x radius) instead of k-NN
   lists: pairs within the radius that fall in different cells of both
   grids are missed (a copy within a few percent of the radius is almost
   always found; a pair at the radius in many dimensions often is not),
   and no partner is lost to a full k-NN list (the pandas engine searches
   such a row again with 128 neighbours). Batch and reference rows go through the same grids, so the
   misses do not depend on the rows' labels: the row p-values and the
   test stay valid given the radius. The radius is the profile's reference radius (its
   fenced 1st-NN quantile) scaled to the pooled size by
   (n_ref / (n_ref + n_batch))^(1/m), m the intrinsic dimension, instead of
   the quantile of the pooled 1st-NN distances (which needs the batch's
   own k-NN), so it depends on the reference rows alone and the
   permutation law is exact only for a configured radius, which is used as
   given. The permutation test
   is the core's, run on the driver over the rows with a partner (their
   pairs collected: O(close pairs), which grows with the square of a
   cluster's size, 5.1M pairs for 10 x 1,010 copies); the model-based exact-copy test
   (`copy_test`, reported beside the pandas test, never deciding) is not
   computed. The near-duplicate row p-values enter `poison_p` as in the
   pandas findings (poison_score keeps the per-row families' ranking). No clusters, cluster sizes or conflicting-label
   clusters are reported, and no near-duplicate test runs in a self-check.
   `near_duplicate_score` is 1 - the row p-value (the pandas engine's is
   its cluster's size score, 0 outside a cluster): the two score columns
   do not correlate; compare the p-values.
11. Sources (`sources.py`): the pandas signal's tests from a
   `groupBy(source, label)` of the rows each signal of the run finds
   suspicious (p <= 0.05), through the core's `count_table`: the same
   numbers from the same p-values (in a self-check, the p-values against
   the sample of item 4, where the pandas self-check counts the signals'
   own flags). Rows of a source named at the
   expectation's level (min(sources.alpha, verdicts.alpha / F)) are
   flagged with its reason. The label divergence from the reference
   distribution is not reported (null), and sources are compared as text
   (a missing source is "None"). The counts inherit the p-value
   differences of items 3, 8 and 10: on breast_cancer with a 10% near-copy
   flood the flooded source's near-duplicate hits were 12 of 26 rows on
   pandas, 13 on Spark (and fewer elsewhere), its q-value 0.004 vs 7e-5 at
   level 0.00125: Spark failed the sources gate, pandas passed it. The
   pandas signal flags a suspicious source's rows at `sources.alpha`
   (0.01) even when the gate passes at the lower expectation level; Spark
   flags them only at that level (australian, split seed 1, 5% flood: 39
   rows of one source flagged on pandas at q 0.0025, none on Spark).
12. Not run on Spark: the reputation ledger (after-run hooks), GX Data Docs,
   the HTML report; `limits.max_rows` does not apply.
13. A GX checkpoint on a Spark dataframe asset (`gx/metrics/spark.py`)
   runs this engine ONCE per batch and set of shared value keys, with the
   suite's families and parameters (plus the signals sources read, and a
   per-row family of the profile when the suite names none: the engine
   scores with one) at alpha = gate_alpha x F, so each gate is at the
   expectations' `gate_alpha`. Each expectation reads its family's gate as
   the signal's `batch_test` (p-value, lower bound) and decides by its own
   rule; a result carries only the rows its signal flags (BH at q over its
   p-values, a trigger's carriers, an offending source's rows, a collision
   group's rows: the groups are the collision expectation's findings, its
   Higher Criticism gate decides). Not given
   to the expectations: near-duplicate clusters (the largest- and
   conflicting-cluster expectations pass saying so where they only report,
   and fail with one line where they would gate on clusters), the
   structure families' per-class report, rejected trigger candidates; the
   source policy expectations (allow/deny lists, reputations) name their
   offending sources but list as unexpected only the rows of sources the
   flagged-rate test names. A trusted side is required.
14. Clean-label collisions (`collisions.py`), against a profile or
   reference only (skipped in a self-check with that reason: the pandas
   self-check judges groups with a model trained on the whole batch). The
   gate is the pandas checkpoint's: Higher Criticism and the closed-testing
   bound over the rows' class-conditional conformal p-values of
   `batch_scores` (the share of the k nearest reference rows with another
   label), computed in the per-row pass (equal scores; p-values as in item
   3); `collision_score` is that share (the pandas engine's
   `collision_score`, the group's unlike share for group members only, is
   `collision_member_score` here).
   The groups only flag rows and are reported in the gate, with these
   differences. Tight groups are the connected components of ALL same-label
   pairs within the state's radius that the two shifted grids find (cell
   side 2 x radius), not of the k-NN lists' edges: a pandas component is
   part of a Spark one (two of them can merge through a pair neither row
   lists among its k nearest; a pair split by both grids is missed), and
   identical rows of one label are one node, so they are one group however
   many there are. Reps are drawn from the members in collection order (other
   random rows than the pandas draw when a group has more than 16), and
   each rep's batch rows within the local radius are counted exactly over
   the whole batch (the pandas search stops at 4,096 neighbours). The
   driver holds at most two edges per distinct row with a close same-label
   partner (spanning forests per cell; 32 bytes an edge) and the members'
   rows (at most `collisions.MAX_MEMBER_ROWS`; above that the groups are
   reported as not judged and flag nothing, the gate still decides). A
   cell of m distinct rows costs O(m^2) distances (in blocks of 1,024 rows
   above 256).
"""
