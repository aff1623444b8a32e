using ILGPU;
using ILGPU.Algorithms;

namespace ManagedClip.Gpu.Kernels;

/// <summary>Shape and row strides of one attention launch.</summary>
internal readonly struct AttentionLaunch(int batch, int queryLength, int keyLength, int heads, int headDim, bool causal,
    int queryStride, int keyStride, int valueStride, int outputStride)
{
    public readonly int Batch = batch, QueryLength = queryLength, KeyLength = keyLength, Heads = heads, HeadDim = headDim,
        Causal = causal ? 1 : 0, QueryStride = queryStride, KeyStride = keyStride, ValueStride = valueStride, OutputStride = outputStride;
    public int QueryBlocks => (QueryLength + AttentionKernel.QueryBlock - 1) / AttentionKernel.QueryBlock;
}

/// <summary>
/// Multi-head attention, softmax(q·kᵀ/√hd [+ causal mask])·v, flash-style: one group of 128 threads per (batch item, head,
/// block of 16 queries). The group keeps its queries Q [16, hd] and their output accumulators O [16, hd] in shared memory and
/// walks the keys in tiles of 16: it stages K and V [16, hd], computes the 16 × 16 scores, and folds them into an online
/// softmax per query (running max m and sum ℓ; when a tile raises the max, O and ℓ are rescaled by e^(m_old − m_new)), so
/// no score matrix ever reaches global memory and any key length works. Heads are read in place from strided (fused QKV)
/// rows and written to their channel slots of the output.
/// <para>
/// Under the causal mask a query's result depends on its own keys only (masked scores add exactly 0 and leave the max
/// unchanged), never on how many queries follow it: the text tower's end-of-text shortcut relies on that, as on the CPU.
/// Head dimensions up to <see cref="MaxHeadDim"/> = 128 (CLIP's are 64): shared memory is sized for it (≈ 34 KB, under the
/// 48 KB every CUDA device grants without opting in).
/// </para>
/// </summary>
internal static class AttentionKernel
{
    public const int Threads = 128;
    public const int QueryBlock = 16, KeyTile = 16, MaxHeadDim = 128;
    const int KeyStride = MaxHeadDim + 1;   // K tile rows one float apart in banks: the 16 keys of a score row hit 16 banks

    public static void Forward(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> output, AttentionLaunch a)
    {
        var queries = SharedMemory.Allocate<float>(QueryBlock * MaxHeadDim);   // Q [16][hd]
        var outputs = SharedMemory.Allocate<float>(QueryBlock * MaxHeadDim);   // O [16][hd], unnormalized
        var keys = SharedMemory.Allocate<float>(KeyTile * KeyStride);          // K [16][hd + pad]
        var values = SharedMemory.Allocate<float>(KeyTile * MaxHeadDim);       // V [16][hd]
        var scores = SharedMemory.Allocate<float>(QueryBlock * KeyTile);       // S, then P [16][16]
        var runningMax = SharedMemory.Allocate<float>(QueryBlock);
        var runningSum = SharedMemory.Allocate<float>(QueryBlock);
        var rescale = SharedMemory.Allocate<float>(QueryBlock);

        int t = Group.IdxX, hd = a.HeadDim;
        int block = Grid.IdxX % a.QueryBlocks, h = Grid.IdxX / a.QueryBlocks % a.Heads, b = Grid.IdxX / (a.QueryBlocks * a.Heads);
        int q0 = block * QueryBlock, column = h * hd;
        float scale = 1f / XMath.Sqrt(hd);

        for (int e = t; e < QueryBlock * hd; e += Threads)
        {
            int i = e / hd, d = e % hd, query = q0 + i;
            queries[i * MaxHeadDim + d] = query < a.QueryLength ? q[(b * a.QueryLength + query) * a.QueryStride + column + d] : 0f;
            outputs[i * MaxHeadDim + d] = 0f;
        }
        if (t < QueryBlock)
        {
            runningMax[t] = float.NegativeInfinity;
            runningSum[t] = 0f;
        }

        // Under the mask, no query of this block sees a key past its last query.
        int keyEnd = a.Causal != 0 ? XMath.Min(a.KeyLength, q0 + QueryBlock) : a.KeyLength;
        for (int j0 = 0; j0 < keyEnd; j0 += KeyTile)
        {
            Group.Barrier();   // the previous tile's K, V and P are no longer read
            for (int e = t; e < KeyTile * hd; e += Threads)
            {
                int j = e / hd, d = e % hd, key = j0 + j;
                bool inside = key < keyEnd;
                int row = b * a.KeyLength + key;
                keys[j * KeyStride + d] = inside ? k[row * a.KeyStride + column + d] : 0f;
                values[j * MaxHeadDim + d] = inside ? v[row * a.ValueStride + column + d] : 0f;
            }
            Group.Barrier();

            // S[i, j] = q_i·k_j / √hd, −∞ where masked (past the keys, past the queries, or j > i under the causal mask).
            for (int e = t; e < QueryBlock * KeyTile; e += Threads)
            {
                int i = e / KeyTile, j = e % KeyTile, query = q0 + i, key = j0 + j;
                bool masked = key >= keyEnd || query >= a.QueryLength || (a.Causal != 0 && key > query);
                float dot = 0f;
                for (int d = 0; d < hd; d++) dot += queries[i * MaxHeadDim + d] * keys[j * KeyStride + d];
                scores[e] = masked ? float.NegativeInfinity : dot * scale;
            }
            Group.Barrier();

            // Online softmax, one thread per query: P = e^(S − m_new), ℓ = ℓ·e^(m_old − m_new) + Σ P.
            if (t < QueryBlock)
            {
                float tileMax = float.NegativeInfinity;
                for (int j = 0; j < KeyTile; j++) tileMax = XMath.Max(tileMax, scores[t * KeyTile + j]);
                float oldMax = runningMax[t], newMax = XMath.Max(oldMax, tileMax);
                // A row with nothing visible yet (only padding queries) keeps O = 0, ℓ = 0: no e^(−∞ + ∞).
                float factor = newMax == float.NegativeInfinity ? 1f : XMath.Exp(oldMax - newMax);
                float tileSum = 0f;
                for (int j = 0; j < KeyTile; j++)
                {
                    float s = scores[t * KeyTile + j];
                    float p = s == float.NegativeInfinity ? 0f : XMath.Exp(s - newMax);
                    scores[t * KeyTile + j] = p;
                    tileSum += p;
                }
                runningSum[t] = runningSum[t] * factor + tileSum;
                runningMax[t] = newMax;
                rescale[t] = factor;
            }
            Group.Barrier();

            // O[i, d] = O[i, d]·factor_i + Σ_j P[i, j]·V[j, d]: neighbouring threads take neighbouring d (V reads conflict-free).
            for (int e = t; e < QueryBlock * hd; e += Threads)
            {
                int i = e / hd, d = e % hd;
                float o = outputs[i * MaxHeadDim + d] * rescale[i];
                for (int j = 0; j < KeyTile; j++) o += scores[i * KeyTile + j] * values[j * MaxHeadDim + d];
                outputs[i * MaxHeadDim + d] = o;
            }
        }
        Group.Barrier();

        for (int e = t; e < QueryBlock * hd; e += Threads)
        {
            int i = e / hd, d = e % hd, query = q0 + i;
            if (query < a.QueryLength)
                output[(b * a.QueryLength + query) * a.OutputStride + column + d] = outputs[i * MaxHeadDim + d] * (1f / runningSum[i]);
        }
    }
}
