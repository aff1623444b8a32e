using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace ManagedClip.Kernels;

/// <summary>
/// Multi-head scaled dot-product attention, softmax(q·kᵀ/√headDim [+ causal mask])·v, reading heads straight
/// out of strided (possibly fused QKV) buffers and writing heads into their channel slots of the output.
/// </summary>
public static class Attention
{
    /// <summary>Keys per score tile. A tile of scores lives on the stack (1 KiB); longer sequences use an online softmax across tiles.</summary>
    internal const int KeyTile = 256;

    /// <summary>
    /// For batch b, head h, query i: output row (b·Lq + i), columns [h·hd, (h + 1)·hd) =
    /// Σ_j softmax_j(q_i·k_j / √hd) v_j, with q_i the same columns of q's row (b·Lq + i) and k_j, v_j those of k's and v's
    /// row (b·Lk + j); hd = q.Columns / heads. When causal, key j is masked for query i if j &gt; i (requires Lq == Lk).
    /// q, k and v may overlap (one fused QKV buffer, each a view with stride 3·width); output must not.
    /// </summary>
    public static unsafe void Forward(ReadOnlyMatrixView q, ReadOnlyMatrixView k, ReadOnlyMatrixView v, MatrixView output, AttentionShape shape,
        KernelContext? context = null)
    {
        var ctx = context ?? KernelContext.Default;
        var (batch, queryLength, keyLength, heads, causal) = shape;
        KernelCommon.NonNegative(batch, "batch");
        KernelCommon.NonNegative(queryLength, "queryLength");
        KernelCommon.Positive(keyLength, "keyLength");
        KernelCommon.Positive(heads, "heads");
        if (q.Columns == 0 || q.Columns % heads != 0)
            throw new ArgumentException($"q has {q.Columns} columns, expected a positive multiple of {heads} heads.", nameof(q));
        int width = q.Columns, headDim = width / heads;
        if (causal && queryLength != keyLength)
            throw new ArgumentException($"A causal mask needs queryLength == keyLength (got {queryLength} and {keyLength}).", nameof(shape));
        long queries = (long)batch * queryLength, keys = (long)batch * keyLength;
        CheckView(q.Rows, q.Columns, queries, width, nameof(q), q.ToString());
        CheckView(k.Rows, k.Columns, keys, width, nameof(k), k.ToString());
        CheckView(v.Rows, v.Columns, keys, width, nameof(v), v.ToString());
        CheckView(output.Rows, output.Columns, queries, width, nameof(output), output.ToString());
        if (queries == 0) return;

        fixed (float* pq = q.Data, pk = k.Data, pv = v.Data, po = output.Data)
        {
            if (Gemm.Overlaps(po, output.Data.Length, pq, q.Data.Length) || Gemm.Overlaps(po, output.Data.Length, pk, k.Data.Length)
                || Gemm.Overlaps(po, output.Data.Length, pv, v.Data.Length))
                throw new ArgumentException("output must not overlap q, k or v.", nameof(output));
            var a = new AttentionArgs(pq, q.Stride, pk, k.Stride, pv, v.Stride, po, output.Stride, batch, queryLength, keyLength, heads, headDim, causal);
            var kernel = new AttentionKernel(a, ctx);
            SimdDispatch.Run(ctx.Level, ref kernel);
        }
    }

    static void CheckView(int rows, int columns, long expectedRows, int expectedColumns, string name, string view)
    {
        if (rows != expectedRows || columns != expectedColumns)
            throw new ArgumentException($"{name} is {view}, expected [{expectedRows}, {expectedColumns}].", name);
    }

    /// <summary>The call at one SIMD level: the scalar twin, or the tiled job with one (batch item, head) per task on the context's threads.</summary>
    readonly struct AttentionKernel(AttentionArgs a, KernelContext context) : IVectorKernel
    {
        public void Run<TVec, TOps>() where TVec : unmanaged where TOps : IVecOps<TVec>
        {
            if (SimdDispatch.IsScalar<TVec>()) { ScalarTwin(a); return; }
            var job = new AttentionJob<TVec, TOps>(a);
            // Per task: Lq·Lk·hd multiply-adds for the scores and as many for the values; two workers from 2¹⁸ in all.
            context.ForWorkers(a.Batch * a.Heads, (long)a.QueryLength * a.KeyLength * a.HeadDim / 4, (ranges, _) => job.Work(ranges));
        }
    }

    // ------------------------------------------------------------------ scalar twin (the oracle)

    /// <summary>Plain two-pass attention: one full row of scores per query, −∞ where masked, softmax, weighted sum of v.</summary>
    static unsafe void ScalarTwin(in AttentionArgs a)
    {
        float[] row = new float[a.KeyLength];
        float scale = 1f / MathF.Sqrt(a.HeadDim);
        fixed (float* s = row)
            for (int b = 0; b < a.Batch; b++)
                for (int h = 0; h < a.Heads; h++)
                    for (int i = 0; i < a.QueryLength; i++)
                    {
                        float* qi = a.Query(b, h, i), oi = a.Output(b, h, i);
                        for (int j = 0; j < a.KeyLength; j++)
                        {
                            if (a.Causal && j > i) { s[j] = float.NegativeInfinity; continue; }
                            float* kj = a.Key(b, h, j);
                            float dot = 0f;
                            for (int d = 0; d < a.HeadDim; d++) dot += qi[d] * kj[d];
                            s[j] = dot * scale;
                        }
                        Softmax.Scalar(s, a.KeyLength);
                        for (int d = 0; d < a.HeadDim; d++) oi[d] = 0f;
                        for (int j = 0; j < a.KeyLength; j++)
                        {
                            float* vj = a.Value(b, h, j);
                            for (int d = 0; d < a.HeadDim; d++) oi[d] += s[j] * vj[d];
                        }
                    }
    }

    // ------------------------------------------------------------------ SIMD path

    /// <summary>
    /// One call's tasks: one (batch item, head) each. Per key tile, the task transposes the tile's keys once into
    /// [headDim, ≤ KeyTile] (Kᵀ, rows padded to two vectors), so that a query's scores are a row-vector × matrix product: one broadcast of
    /// q[x] and one FMA per vector of keys, with no horizontal sums; two queries share each Kᵀ load. It also copies the tile's
    /// values into a compact [≤ KeyTile, headDim] block: in place they sit one fused-QKV row apart (3·768 floats for ViT-B),
    /// a stride that folds 50 rows onto a quarter of L1's sets, so every query's pass over them missed L1. Each score is still one
    /// dot product summed over x in order, so a query's result depends on its own keys only, never on how many queries or
    /// keys follow it (the text tower's end-of-text shortcut relies on that).
    /// </summary>
    sealed unsafe class AttentionJob<TVec, TOps>(AttentionArgs a) where TVec : unmanaged where TOps : IVecOps<TVec>
    {
        readonly AttentionArgs _a = a;

        /// <summary>One worker: its scratch, then every (batch item, head) task it takes.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Work(WorkRanges ranges)
        {
            int d = _a.HeadDim;
            // Per worker: Kᵀ tile [d, ≤ KeyTile], value tile [≤ KeyTile, d], two score rows, and the running max and sum of
            // every query. Cleared once so padding lanes past a tile's keys are always finite.
            float[] buffer = System.Buffers.ArrayPool<float>.Shared.Rent(2 * d * KeyTile + 2 * KeyTile + 2 * _a.QueryLength + 16);
            Array.Clear(buffer);
            try
            {
                fixed (float* raw = buffer)
                {
                    float* keysT = (float*)(((nint)raw + 63) & ~(nint)63);
                    float* values = keysT + d * KeyTile, s0 = values + d * KeyTile, s1 = s0 + KeyTile, max = s1 + KeyTile, sum = max + _a.QueryLength;
                    while (ranges.TryTake(out int first, out int end))
                        for (int t = first; t < end; t++)
                            RunHead(t / _a.Heads, t % _a.Heads, keysT, values, s0, s1, max, sum);
                }
            }
            finally { System.Buffers.ArrayPool<float>.Shared.Return(buffer); }
        }

        /// <summary>
        /// All queries of (b, h), each with an online softmax over key tiles: running max m and sum ℓ per query; when a tile
        /// raises the max, the accumulated output and ℓ are rescaled by e^(m_old − m_new). The output rows are the accumulators.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void RunHead(int b, int h, float* keysT, float* values, float* s0, float* s1, float* max, float* sum)
        {
            ref readonly AttentionArgs a = ref _a;
            int d = a.HeadDim, lq = a.QueryLength, w = TOps.Count;
            float scale = 1f / MathF.Sqrt(d);
            new Span<float>(max, lq).Fill(float.NegativeInfinity);
            new Span<float>(sum, lq).Clear();
            for (int i = 0; i < lq; i++) new Span<float>(a.Output(b, h, i), d).Clear();
            int keyEnd = a.Causal ? lq : a.KeyLength;
            for (int j0 = 0; j0 < keyEnd; j0 += KeyTile)
            {
                int n = Math.Min(KeyTile, keyEnd - j0);
                // Kᵀ rows as long as the tile rounded up to two vectors: compact, so the tile stays in L1.
                int stride = (n + 2 * w - 1) / (2 * w) * (2 * w);
                for (int j = 0; j < n; j++)
                {
                    float* kj = a.Key(b, h, j0 + j);
                    for (int x = 0; x < d; x++) keysT[x * stride + j] = kj[x];
                    new ReadOnlySpan<float>(a.Value(b, h, j0 + j), d).CopyTo(new Span<float>(values + j * d, d));
                }
                int first = a.Causal ? j0 : 0;   // under the mask, queries before j0 see nothing of this tile
                for (int i = first; i < lq; i += 2)
                {
                    bool pair = i + 1 < lq;
                    int n0 = KeysSeen(i, j0, n), n1 = pair ? KeysSeen(i + 1, j0, n) : 0;
                    Scores(a.Query(b, h, i), pair ? a.Query(b, h, i + 1) : a.Query(b, h, i), keysT, stride, Math.Max(n0, n1), d, scale, s0, s1);
                    Accumulate(b, h, i, values, s0, n0, ref max[i], ref sum[i]);
                    if (pair) Accumulate(b, h, i + 1, values, s1, n1, ref max[i + 1], ref sum[i + 1]);
                }
            }
            for (int i = 0; i < lq; i++) Softmax.Scale<TVec, TOps>(a.Output(b, h, i), d, 1f / sum[i]);
        }

        /// <summary>Keys of the tile starting at j0 (n of them) that query i attends to: all, or up to i under the causal mask.</summary>
        int KeysSeen(int i, int j0, int n) => _a.Causal ? Math.Min(n, i + 1 - j0) : n;

        /// <summary>s0[j] = q0·k_j·scale and s1[j] = q1·k_j·scale for j &lt; n (whole vectors; lanes past n are ignored), from Kᵀ.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static void Scores(float* q0, float* q1, float* keysT, int stride, int n, int d, float scale, float* s0, float* s1)
        {
            int w = TOps.Count;
            var vscale = TOps.Splat(scale);
            int jv = 0;
            while (jv < n)
            {
                if (n - jv > 2 * w && jv + 4 * w <= stride)
                {
                    // Four vectors of keys × two queries: eight independent FMA chains, enough to hide the FMA latency.
                    TVec a0 = TOps.Zero, a1 = TOps.Zero, a2 = TOps.Zero, a3 = TOps.Zero;
                    TVec c0 = TOps.Zero, c1 = TOps.Zero, c2 = TOps.Zero, c3 = TOps.Zero;
                    float* k = keysT + jv;
                    for (int x = 0; x < d; x++, k += stride)
                    {
                        TVec k0 = TOps.Load(k), k1 = TOps.Load(k + w), k2 = TOps.Load(k + 2 * w), k3 = TOps.Load(k + 3 * w);
                        TVec x0 = TOps.Splat(q0[x]), x1 = TOps.Splat(q1[x]);
                        a0 = TOps.Fma(x0, k0, a0); a1 = TOps.Fma(x0, k1, a1); a2 = TOps.Fma(x0, k2, a2); a3 = TOps.Fma(x0, k3, a3);
                        c0 = TOps.Fma(x1, k0, c0); c1 = TOps.Fma(x1, k1, c1); c2 = TOps.Fma(x1, k2, c2); c3 = TOps.Fma(x1, k3, c3);
                    }
                    TOps.Store(TOps.Mul(a0, vscale), s0 + jv); TOps.Store(TOps.Mul(a1, vscale), s0 + jv + w);
                    TOps.Store(TOps.Mul(a2, vscale), s0 + jv + 2 * w); TOps.Store(TOps.Mul(a3, vscale), s0 + jv + 3 * w);
                    TOps.Store(TOps.Mul(c0, vscale), s1 + jv); TOps.Store(TOps.Mul(c1, vscale), s1 + jv + w);
                    TOps.Store(TOps.Mul(c2, vscale), s1 + jv + 2 * w); TOps.Store(TOps.Mul(c3, vscale), s1 + jv + 3 * w);
                    jv += 4 * w;
                }
                else
                {
                    // Two vectors (the stride is a multiple of 2w; lanes past n are ignored).
                    TVec a0 = TOps.Zero, a1 = TOps.Zero, c0 = TOps.Zero, c1 = TOps.Zero;
                    float* k = keysT + jv;
                    for (int x = 0; x < d; x++, k += stride)
                    {
                        TVec k0 = TOps.Load(k), k1 = TOps.Load(k + w);
                        TVec x0 = TOps.Splat(q0[x]), x1 = TOps.Splat(q1[x]);
                        a0 = TOps.Fma(x0, k0, a0); a1 = TOps.Fma(x0, k1, a1);
                        c0 = TOps.Fma(x1, k0, c0); c1 = TOps.Fma(x1, k1, c1);
                    }
                    TOps.Store(TOps.Mul(a0, vscale), s0 + jv); TOps.Store(TOps.Mul(a1, vscale), s0 + jv + w);
                    TOps.Store(TOps.Mul(c0, vscale), s1 + jv); TOps.Store(TOps.Mul(c1, vscale), s1 + jv + w);
                    jv += 2 * w;
                }
            }
        }

        /// <summary>Online-softmax update of query i's output row with the n scores of the current tile, whose values are [n, d] at <paramref name="values"/>.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void Accumulate(int b, int h, int i, float* values, float* scores, int n, ref float runningMax, ref float runningSum)
        {
            ref readonly AttentionArgs a = ref _a;
            int d = a.HeadDim, w = TOps.Count;
            float* oi = a.Output(b, h, i);
            float tileMax = Softmax.MaxOf<TVec, TOps>(scores, n);
            if (tileMax > runningMax)
            {
                if (runningSum != 0f)
                {
                    float f = OpsScalar.Exp(runningMax - tileMax);
                    Softmax.Scale<TVec, TOps>(oi, d, f);
                    runningSum *= f;
                }
                runningMax = tileMax;
            }
            runningSum += Softmax.ExpSubtractAndSum<TVec, TOps>(scores, n, runningMax);
            // o += Σ_j p_j · v_j with the row in registers: four vectors of it at a time, even and odd keys in separate
            // accumulators (eight FMA chains), added at the end. The order depends only on n, this query's own key count.
            int x = 0;
            for (; x + 4 * w <= d; x += 4 * w)
            {
                TVec e0 = TOps.Zero, e1 = TOps.Zero, e2 = TOps.Zero, e3 = TOps.Zero;
                TVec f0 = TOps.Zero, f1 = TOps.Zero, f2 = TOps.Zero, f3 = TOps.Zero;
                int j = 0;
                for (; j + 1 < n; j += 2)
                {
                    float* v0 = values + j * d + x, v1 = v0 + d;
                    var p0 = TOps.Splat(scores[j]); var p1 = TOps.Splat(scores[j + 1]);
                    e0 = TOps.Fma(p0, TOps.Load(v0), e0); e1 = TOps.Fma(p0, TOps.Load(v0 + w), e1);
                    e2 = TOps.Fma(p0, TOps.Load(v0 + 2 * w), e2); e3 = TOps.Fma(p0, TOps.Load(v0 + 3 * w), e3);
                    f0 = TOps.Fma(p1, TOps.Load(v1), f0); f1 = TOps.Fma(p1, TOps.Load(v1 + w), f1);
                    f2 = TOps.Fma(p1, TOps.Load(v1 + 2 * w), f2); f3 = TOps.Fma(p1, TOps.Load(v1 + 3 * w), f3);
                }
                if (j < n)
                {
                    float* v0 = values + j * d + x;
                    var p0 = TOps.Splat(scores[j]);
                    e0 = TOps.Fma(p0, TOps.Load(v0), e0); e1 = TOps.Fma(p0, TOps.Load(v0 + w), e1);
                    e2 = TOps.Fma(p0, TOps.Load(v0 + 2 * w), e2); e3 = TOps.Fma(p0, TOps.Load(v0 + 3 * w), e3);
                }
                TOps.Store(TOps.Add(TOps.Load(oi + x), TOps.Add(e0, f0)), oi + x);
                TOps.Store(TOps.Add(TOps.Load(oi + x + w), TOps.Add(e1, f1)), oi + x + w);
                TOps.Store(TOps.Add(TOps.Load(oi + x + 2 * w), TOps.Add(e2, f2)), oi + x + 2 * w);
                TOps.Store(TOps.Add(TOps.Load(oi + x + 3 * w), TOps.Add(e3, f3)), oi + x + 3 * w);
            }
            for (; x + w <= d; x += w)
            {
                TVec o0 = TOps.Load(oi + x);
                for (int j = 0; j < n; j++) o0 = TOps.Fma(TOps.Splat(scores[j]), TOps.Load(values + j * d + x), o0);
                TOps.Store(o0, oi + x);
            }
            for (; x < d; x++)
            {
                float o = oi[x];
                for (int j = 0; j < n; j++) o = OpsScalar.Fma(scores[j], values[j * d + x], o);
                oi[x] = o;
            }
        }
    }
}

/// <summary>Batch items, sequence lengths and heads of one attention call; the head width is the views' columns / heads.</summary>
public readonly record struct AttentionShape(int Batch, int QueryLength, int KeyLength, int Heads, bool Causal = false);

internal readonly unsafe struct AttentionArgs(float* q, int queryStride, float* k, int keyStride, float* v, int valueStride, float* output, int outputStride,
    int batch, int queryLength, int keyLength, int heads, int headDim, bool causal)
{
    public readonly int Batch = batch, QueryLength = queryLength, KeyLength = keyLength, Heads = heads, HeadDim = headDim;
    public readonly bool Causal = causal;
    readonly float* _q = q, _k = k, _v = v, _o = output;
    readonly int _qs = queryStride, _ks = keyStride, _vs = valueStride, _os = outputStride;

    public float* Query(int b, int h, int i) => _q + ((long)b * QueryLength + i) * _qs + (long)h * HeadDim;
    public float* Key(int b, int h, int j) => _k + ((long)b * KeyLength + j) * _ks + (long)h * HeadDim;
    public float* Value(int b, int h, int j) => _v + ((long)b * KeyLength + j) * _vs + (long)h * HeadDim;
    public float* Output(int b, int h, int i) => _o + ((long)b * QueryLength + i) * _os + (long)h * HeadDim;
}
