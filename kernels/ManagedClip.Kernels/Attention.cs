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

    /// <summary>Queries per parallel task: enough work to amortize scheduling, small enough to spread batch-1 text (77 queries × 8 heads) over cores.</summary>
    internal const int QueryBlock = 16;

    /// <summary>
    /// For batch b, head h, query i: output[(b·Lq + i)·outputStride + h·headDim ..+headDim] =
    /// Σ_j softmax_j(q_i·k_j / √headDim) v_j, with q_i = q[(b·Lq + i)·queryStride + h·headDim ..] and
    /// k_j, v_j = k, v[(b·Lk + j)·keyValueStride + h·headDim ..]. When <paramref name="causal"/>, key j is masked for
    /// query i if j &gt; i (requires queryLength == keyLength). q, k and v may overlap (fused QKV); output must not.
    /// </summary>
    public static unsafe void Forward(ReadOnlySpan<float> q, int queryStride, ReadOnlySpan<float> k, ReadOnlySpan<float> v, int keyValueStride,
        Span<float> output, int outputStride, int batch, int queryLength, int keyLength, int heads, int headDim, bool causal,
        int maxThreads = 0, SimdLevel? level = null)
    {
        KernelCommon.NonNegative(batch, nameof(batch));
        KernelCommon.NonNegative(queryLength, nameof(queryLength));
        KernelCommon.Positive(keyLength, nameof(keyLength));
        KernelCommon.Positive(heads, nameof(heads));
        KernelCommon.Positive(headDim, nameof(headDim));
        long width = (long)heads * headDim;
        if (queryStride < width) throw new ArgumentOutOfRangeException(nameof(queryStride), queryStride, $"queryStride must be at least heads × headDim = {width}.");
        if (keyValueStride < width) throw new ArgumentOutOfRangeException(nameof(keyValueStride), keyValueStride, $"keyValueStride must be at least heads × headDim = {width}.");
        if (outputStride < width) throw new ArgumentOutOfRangeException(nameof(outputStride), outputStride, $"outputStride must be at least heads × headDim = {width}.");
        if (causal && queryLength != keyLength)
            throw new ArgumentException($"A causal mask needs queryLength == keyLength (got {queryLength} and {keyLength}).", nameof(causal));
        int threads = KernelCommon.Threads(maxThreads);
        var l = KernelCommon.Resolve(level);

        long queries = (long)batch * queryLength, keys = (long)batch * keyLength;
        if (queries == 0) return;
        KernelCommon.Fits(q.Length, (queries - 1) * queryStride + width, nameof(q), $"[{batch}·{queryLength} rows, stride {queryStride}]");
        KernelCommon.Fits(k.Length, (keys - 1) * keyValueStride + width, nameof(k), $"[{batch}·{keyLength} rows, stride {keyValueStride}]");
        KernelCommon.Fits(v.Length, (keys - 1) * keyValueStride + width, nameof(v), $"[{batch}·{keyLength} rows, stride {keyValueStride}]");
        KernelCommon.Fits(output.Length, (queries - 1) * outputStride + width, nameof(output), $"[{batch}·{queryLength} rows, stride {outputStride}]");

        fixed (float* pq = q, pk = k, pv = v, po = output)
        {
            if (Gemm.Overlaps(po, output.Length, pq, q.Length) || Gemm.Overlaps(po, output.Length, pk, k.Length) || Gemm.Overlaps(po, output.Length, pv, v.Length))
                throw new ArgumentException("output must not overlap q, k or v.", nameof(output));
            var a = new AttentionArgs(pq, queryStride, pk, pv, keyValueStride, po, outputStride, batch, queryLength, keyLength, heads, headDim, causal);
            switch (l)
            {
                case SimdLevel.Vector512: Run<Vector512<float>, Ops512>(a, threads); break;
                case SimdLevel.Vector256: Run<Vector256<float>, Ops256>(a, threads); break;
                case SimdLevel.Vector128: Run<Vector128<float>, Ops128>(a, threads); break;
                default: ScalarTwin(a); break;
            }
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

    static void Run<TVec, TOps>(in AttentionArgs a, int threads) where TVec : unmanaged where TOps : IVecOps<TVec>
    {
        var job = new AttentionJob<TVec, TOps>(a);
        threads = (int)Math.Min(threads, job.Tasks);
        if ((long)a.Batch * a.Heads * a.QueryLength * a.KeyLength * a.HeadDim < Gemm.ParallelThreshold) threads = 1;
        if (threads <= 1) { job.Work(); return; }
        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, _ => job.Work());
    }

    sealed unsafe class AttentionJob<TVec, TOps>(AttentionArgs a) where TVec : unmanaged where TOps : IVecOps<TVec>
    {
        readonly AttentionArgs _a = a;
        readonly int _queryBlocks = (a.QueryLength + QueryBlock - 1) / QueryBlock;
        int _next;

        public long Tasks => (long)_a.Batch * _a.Heads * _queryBlocks;

        [SkipLocalsInit]
        public void Work()
        {
            float* scores = stackalloc float[KeyTile];
            long t;
            while ((t = Interlocked.Increment(ref _next) - 1) < Tasks)
            {
                int qb = (int)(t % _queryBlocks), bh = (int)(t / _queryBlocks);
                int b = bh / _a.Heads, h = bh % _a.Heads;
                int iEnd = Math.Min(_a.QueryLength, (qb + 1) * QueryBlock);
                for (int i = qb * QueryBlock; i < iEnd; i++) Query(b, h, i, scores);
            }
        }

        /// <summary>
        /// One query row with an online softmax over key tiles: running max m and sum ℓ; when a tile raises the max,
        /// the accumulated output and ℓ are rescaled by e^(m_old − m_new). The output row itself is the accumulator.
        /// </summary>
        void Query(int b, int h, int i, float* scores)
        {
            ref readonly AttentionArgs a = ref _a;
            int d = a.HeadDim, w = TOps.Count;
            float* qi = a.Query(b, h, i), oi = a.Output(b, h, i);
            float scale = 1f / MathF.Sqrt(d);
            new Span<float>(oi, d).Clear();
            int keyEnd = a.Causal ? i + 1 : a.KeyLength;
            float runningMax = float.NegativeInfinity, runningSum = 0f;
            for (int j0 = 0; j0 < keyEnd; j0 += KeyTile)
            {
                int n = Math.Min(KeyTile, keyEnd - j0);
                float tileMax = float.NegativeInfinity;
                for (int j = 0; j < n; j++)
                {
                    float s = Dot(qi, a.Key(b, h, j0 + j), d) * scale;
                    scores[j] = s;
                    tileMax = MathF.Max(tileMax, s);
                }
                if (tileMax > runningMax)
                {
                    if (runningSum != 0f)
                    {
                        float f = MathF.Exp(runningMax - tileMax);
                        Softmax.Scale<TVec, TOps>(oi, d, f);
                        runningSum *= f;
                    }
                    runningMax = tileMax;
                }
                runningSum += Softmax.ExpSubtractAndSum<TVec, TOps>(scores, n, runningMax);
                for (int j = 0; j < n; j++)
                {
                    // o += p_j · v_j
                    float* vj = a.Value(b, h, j0 + j);
                    var p = TOps.Splat(scores[j]);
                    int x = 0;
                    for (; x <= d - w; x += w) TOps.Store(TOps.Fma(p, TOps.Load(vj + x), TOps.Load(oi + x)), oi + x);
                    for (; x < d; x++) oi[x] += scores[j] * vj[x];
                }
            }
            Softmax.Scale<TVec, TOps>(oi, d, 1f / runningSum);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static float Dot(float* x, float* y, int n)
        {
            int w = TOps.Count, i = 0;
            var acc = TOps.Zero;
            for (; i <= n - w; i += w) acc = TOps.Fma(TOps.Load(x + i), TOps.Load(y + i), acc);
            float s = TOps.Sum(acc);
            for (; i < n; i++) s += x[i] * y[i];
            return s;
        }
    }
}

internal readonly unsafe struct AttentionArgs(float* q, int queryStride, float* k, float* v, int keyValueStride, float* output, int outputStride,
    int batch, int queryLength, int keyLength, int heads, int headDim, bool causal)
{
    public readonly int Batch = batch, QueryLength = queryLength, KeyLength = keyLength, Heads = heads, HeadDim = headDim;
    public readonly bool Causal = causal;
    readonly float* _q = q, _k = k, _v = v, _o = output;
    readonly int _qs = queryStride, _kvs = keyValueStride, _os = outputStride;

    public float* Query(int b, int h, int i) => _q + ((long)b * QueryLength + i) * _qs + (long)h * HeadDim;
    public float* Key(int b, int h, int j) => _k + ((long)b * KeyLength + j) * _kvs + (long)h * HeadDim;
    public float* Value(int b, int h, int j) => _v + ((long)b * KeyLength + j) * _kvs + (long)h * HeadDim;
    public float* Output(int b, int h, int i) => _o + ((long)b * QueryLength + i) * _os + (long)h * HeadDim;
}
