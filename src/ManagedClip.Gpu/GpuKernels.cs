using ILGPU;
using ILGPU.Runtime;
using ManagedClip.Gpu.Kernels;
using ManagedClip.Kernels;
using Half = ILGPU.Half;

namespace ManagedClip.Gpu;

/// <summary>
/// Every kernel of the GPU backend, compiled once for one <see cref="GpuDevice"/> (on construction), with launch methods over
/// device views. Launches are asynchronous, in order on the device's stream; <see cref="GpuDevice.Synchronize"/> or a copy back
/// waits for them. Each method checks its arguments on the host (shapes, view lengths, aliasing) and throws
/// <see cref="ArgumentException"/> naming the argument; the kernels themselves never check. Matrices are row-major with explicit
/// row strides (in floats), so a view can be a head's columns of a fused QKV buffer or a channel slot of a wider output.
/// Semantics are the CPU kernels' (kernels/ManagedClip.Kernels), within float rounding. Sizes are limited to 2³¹ − 1 floats
/// per view (32-bit index arithmetic on the device). Launch from one thread at a time (the stream is shared).
/// </summary>
public sealed class GpuKernels : IDisposable
{
    readonly GpuDevice _device;
    readonly MemoryBuffer1D<float, Stride1D.Dense> _nothing;   // stands in for an absent bias or residual (never read)

    readonly GemmVariants<DenseRows> _gemm;               // the GEMM over dense rows
    readonly GemmVariants<ConvolutionRows> _convolution;  // the GEMM over implicit im2col rows
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, LayerNormShape> _layerNorm;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionLaunch> _attention;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionPoolShape> _attentionPool;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ImageExtent> _toChannelsLast;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ImageExtent> _patchify;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, TokenExtent> _assembleTokens;
    readonly Action<Index1D, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, TokenExtent> _embedTokens;
    readonly Action<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, GatherExtent> _gatherRows;
    readonly Action<Index1D, ArrayView<float>, float> _scale;
    readonly Action<Index1D, ArrayView<float>, int> _activate;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ImageExtent, int> _averagePool;

    internal GpuKernels(GpuDevice device)
    {
        _device = device;
        var accelerator = device.Accelerator;
        try
        {
            _nothing = accelerator.Allocate1D<float>(1);
            _gemm = new GemmVariants<DenseRows>(accelerator);
            _convolution = new GemmVariants<ConvolutionRows>(accelerator);
            _layerNorm = accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, LayerNormShape>(LayerNormKernel.Forward);
            _attention = accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionLaunch>(AttentionKernel.Forward);
            _attentionPool = accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionPoolShape>(
                AttentionPoolKernel.Heads);
            _toChannelsLast = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ImageExtent>(ElementwiseKernels.ToChannelsLast);
            _patchify = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ImageExtent>(ElementwiseKernels.Patchify);
            _assembleTokens = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, TokenExtent>(
                ElementwiseKernels.AssembleTokens);
            _embedTokens = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, TokenExtent>(
                ElementwiseKernels.EmbedTokens);
            _gatherRows = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, GatherExtent>(ElementwiseKernels.GatherRows);
            _scale = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, float>(ElementwiseKernels.Scale);
            _activate = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, int>(ElementwiseKernels.Activate);
            _averagePool = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ImageExtent, int>(ElementwiseKernels.AveragePool);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            _nothing?.Dispose();
            throw new GpuException($"the kernels could not be compiled for {device}: {e.Message}", e);
        }
    }

    // ------------------------------------------------------------------ GEMM and convolution

    /// <summary>
    /// y [m, N] = act(x [m, K]·B + bias + residual), B = <paramref name="weights"/> [K, N] (fp32 or fp16 storage); x and y row-major with row strides
    /// <paramref name="xStride"/> and <paramref name="yStride"/>. <paramref name="bias"/> [N] or empty; <paramref name="residual"/>
    /// is laid out as y (same stride) or empty, and may be y itself (y += x·B + b). y must not overlap x or the bias.
    /// </summary>
    public void Gemm(ArrayView<float> x, int m, int xStride, GpuMatrix weights, ArrayView<float> y, int yStride,
        ArrayView<float> bias = default, Activation activation = Activation.None, ArrayView<float> residual = default)
    {
        ArgumentNullException.ThrowIfNull(weights);
        CheckMatrix(x, m, weights.K, xStride, nameof(x));
        CheckEpilogue(y, m, weights.N, yStride, bias, activation, residual);
        CheckDisjoint(y, nameof(y), x, nameof(x));
        if (m == 0) return;
        var epilogue = new GemmEpilogue(weights.N, weights.K, yStride, bias.Length > 0, residual.Length > 0, (int)activation);
        bool large = UsesLargeTiles(m, weights.N, _device.Accelerator.NumMultiprocessors);
        Launch("GEMM", () => _gemm.Run(large, new DenseRows(m, weights.K, xStride), x, weights, OrNothing(bias), OrNothing(residual), y, epilogue));
    }

    /// <summary>
    /// k×k convolution over NHWC, as an implicit GEMM (the im2col matrix is never stored): x [B, H, W, Cin] → y [B, Ho, Wo, Cout]
    /// = act(conv(x) + bias + residual), Ho = <see cref="GpuConvolutionFilter.OutputSize"/>(H). Bias [Cout] or empty; the residual
    /// is laid out as y and may be y itself (a bottleneck's y ← relu(conv(x) + b + y)). y must not overlap x.
    /// </summary>
    public void Convolution(ArrayView<float> input, int batch, int height, int width, GpuConvolutionFilter filter, ArrayView<float> output,
        ArrayView<float> bias = default, Activation activation = Activation.None, ArrayView<float> residual = default)
    {
        ArgumentNullException.ThrowIfNull(filter);
        CheckImage(input, batch, height, width, filter.InChannels, nameof(input));
        int outHeight = filter.OutputSize(height), outWidth = filter.OutputSize(width);
        long rows = (long)batch * outHeight * outWidth;
        CheckInt(rows * filter.OutChannels, nameof(output));
        CheckEpilogue(output, (int)rows, filter.OutChannels, filter.OutChannels, bias, activation, residual);
        CheckDisjoint(output, nameof(output), input, nameof(input));
        if (rows == 0) return;
        var im2col = new ConvolutionRows(batch, height, width, filter.InChannels, outHeight, outWidth, filter.Kernel, filter.Stride, filter.Padding);
        var epilogue = new GemmEpilogue(filter.OutChannels, filter.Weights.K, filter.OutChannels, bias.Length > 0, residual.Length > 0, (int)activation);
        bool large = UsesLargeTiles((int)rows, filter.OutChannels, _device.Accelerator.NumMultiprocessors);
        Launch("convolution", () => _convolution.Run(large, im2col, input, filter.Weights, OrNothing(bias), OrNothing(residual), output, epilogue));
    }

    // ------------------------------------------------------------------ transformer

    /// <summary>
    /// y[r, :] = (x[r, :] − mean) / √(var + ε)·γ + β for r &lt; <paramref name="rows"/>, x and y with row strides; x and y may be
    /// the same rows (same view and stride), otherwise they must not overlap. γ and β have <paramref name="width"/> values.
    /// </summary>
    public void LayerNorm(ArrayView<float> x, int rows, int width, int xStride, ArrayView<float> y, int yStride,
        ArrayView<float> gamma, ArrayView<float> beta, float epsilon = 1e-5f)
    {
        if (width < 1) throw new ArgumentOutOfRangeException(nameof(width), width, "width must be positive.");
        CheckMatrix(x, rows, width, xStride, nameof(x));
        CheckMatrix(y, rows, width, yStride, nameof(y));
        CheckVector(gamma, width, nameof(gamma));
        CheckVector(beta, width, nameof(beta));
        if (!(epsilon >= 0f)) throw new ArgumentOutOfRangeException(nameof(epsilon), epsilon, "epsilon must be a non-negative number.");
        if (!SameStart(x, y) || xStride != yStride) CheckDisjoint(y, nameof(y), x, nameof(x));
        if (rows == 0) return;
        Launch("layer norm", () => _layerNorm(new KernelConfig(rows, LayerNormKernel.Threads), x, y, gamma, beta,
            new LayerNormShape(width, xStride, yStride, epsilon)));
    }

    /// <summary>
    /// Multi-head attention (the CPU's Attention.Forward): for item b, head h, query i, output row (b·Lq + i), columns
    /// [h·hd, (h + 1)·hd) = Σ_j softmax_j(q_i·k_j/√hd)·v_j, q_i those columns of q's row (b·Lq + i), k_j and v_j of row (b·Lk + j),
    /// hd = <paramref name="width"/>/<paramref name="heads"/> ≤ 128. Causal: key j is masked for query i when j &gt; i (Lq = Lk).
    /// q, k and v may be views of one fused QKV buffer (offsets 0, d, 2d, stride 3d); the output must not overlap them.
    /// </summary>
    public void Attention(ArrayView<float> q, int qStride, ArrayView<float> k, int kStride, ArrayView<float> v, int vStride,
        ArrayView<float> output, int outputStride, int width, int batch, int queryLength, int keyLength, int heads, bool causal = false)
    {
        if (batch < 0) throw new ArgumentOutOfRangeException(nameof(batch), batch, "batch must be non-negative.");
        if (queryLength < 0) throw new ArgumentOutOfRangeException(nameof(queryLength), queryLength, "queryLength must be non-negative.");
        if (keyLength < 1) throw new ArgumentOutOfRangeException(nameof(keyLength), keyLength, "keyLength must be positive.");
        if (heads < 1) throw new ArgumentOutOfRangeException(nameof(heads), heads, "heads must be positive.");
        if (width < 1 || width % heads != 0)
            throw new ArgumentException($"width {width} is not a positive multiple of {heads} heads.", nameof(width));
        int headDim = width / heads;
        if (headDim > AttentionKernel.MaxHeadDim)
            throw new ArgumentException($"head dimension {headDim} is above the kernel's {AttentionKernel.MaxHeadDim}.", nameof(heads));
        if (causal && queryLength != keyLength)
            throw new ArgumentException($"a causal mask needs queryLength == keyLength (got {queryLength} and {keyLength}).", nameof(causal));
        long queries = (long)batch * queryLength, keys = (long)batch * keyLength;
        CheckInt(queries, nameof(queryLength));
        CheckInt(keys, nameof(keyLength));
        CheckMatrix(q, (int)queries, width, qStride, nameof(q));
        CheckMatrix(k, (int)keys, width, kStride, nameof(k));
        CheckMatrix(v, (int)keys, width, vStride, nameof(v));
        CheckMatrix(output, (int)queries, width, outputStride, nameof(output));
        CheckDisjoint(output, nameof(output), q, nameof(q));
        CheckDisjoint(output, nameof(output), k, nameof(k));
        CheckDisjoint(output, nameof(output), v, nameof(v));
        if (queries == 0) return;
        var a = new AttentionLaunch(batch, queryLength, keyLength, heads, headDim, causal, qStride, kStride, vStride, outputStride);
        CheckInt((long)batch * heads * a.QueryBlocks, nameof(batch));
        Launch("attention", () => _attention(new KernelConfig(batch * heads * a.QueryBlocks, AttentionKernel.Threads), q, k, v, output, a));
    }

    // ------------------------------------------------------------------ data movement

    /// <summary>NCHW [B, C, H, W] → NHWC [B, H, W, C]. The views must not overlap.</summary>
    public void ToChannelsLast(ArrayView<float> input, int batch, int channels, int height, int width, ArrayView<float> output)
    {
        CheckImage(input, batch, height, width, channels, nameof(input));
        CheckImage(output, batch, height, width, channels, nameof(output));
        CheckDisjoint(output, nameof(output), input, nameof(input));
        int count = batch * height * width * channels;
        if (count == 0) return;
        Launch("NCHW to NHWC", () => _toChannelsLast(count, input, output, new ImageExtent(batch, height, width, channels)));
    }

    /// <summary>
    /// ViT patchify: pixels [B, C, R, R] → rows [B·g², C·P·P], g = R/P, row (b, gy, gx) in (c, ky, kx) order (conv1.weight's).
    /// R must be a multiple of P. The views must not overlap.
    /// </summary>
    public void Patchify(ArrayView<float> pixels, int batch, int channels, int imageSize, int patchSize, ArrayView<float> rows)
    {
        if (patchSize < 1 || imageSize < 1 || imageSize % patchSize != 0)
            throw new ArgumentException($"image size {imageSize} is not a positive multiple of patch size {patchSize}.", nameof(patchSize));
        CheckImage(pixels, batch, imageSize, imageSize, channels, nameof(pixels));
        CheckLength(rows, (long)batch * channels * imageSize * imageSize, nameof(rows));
        CheckDisjoint(rows, nameof(rows), pixels, nameof(pixels));
        int count = batch * channels * imageSize * imageSize;
        if (count == 0) return;
        Launch("patchify", () => _patchify(count, pixels, rows, new ImageExtent(batch, imageSize, patchSize, channels)));
    }

    /// <summary>
    /// output [B, n, D]: output[b, 0] = first[b] (or first[0] for every b when <paramref name="firstPerItem"/> is false: the
    /// ViT class token) + positional[0]; output[b, 1 + i] = rest[b, i] + positional[1 + i]. rest [B, n − 1, D], positional [n, D].
    /// The output must not overlap the inputs.
    /// </summary>
    public void AssembleTokens(ArrayView<float> first, bool firstPerItem, ArrayView<float> rest, ArrayView<float> positional,
        ArrayView<float> output, int batch, int tokens, int width)
    {
        CheckCounts(batch, tokens, width);
        CheckLength(first, (firstPerItem ? (long)batch : 1) * width, nameof(first));
        CheckLength(rest, (long)batch * (tokens - 1) * width, nameof(rest));
        CheckLength(positional, (long)tokens * width, nameof(positional));
        CheckLength(output, (long)batch * tokens * width, nameof(output));
        CheckDisjoint(output, nameof(output), first, nameof(first));
        CheckDisjoint(output, nameof(output), rest, nameof(rest));
        CheckDisjoint(output, nameof(output), positional, nameof(positional));
        int count = batch * tokens * width;
        if (count == 0) return;
        Launch("token assembly", () => _assembleTokens(count, first, rest, positional, output,
            new TokenExtent(batch, tokens, width, firstPerItem ? 1 : 0)));
    }

    /// <summary>
    /// x[b, i] = table[ids[b, i]] + positional[i]: ids [B, L] (validated on the host: an id outside [0, vocabulary) yields a NaN
    /// row), table [vocabulary, D], positional [≥ L, D], output [B, L, D].
    /// </summary>
    public void EmbedTokens(ArrayView<int> ids, ArrayView<float> table, int vocabulary, ArrayView<float> positional,
        ArrayView<float> output, int batch, int length, int width)
    {
        if (batch < 0) throw new ArgumentOutOfRangeException(nameof(batch), batch, "batch must be non-negative.");
        if (length < 0) throw new ArgumentOutOfRangeException(nameof(length), length, "length must be non-negative.");
        if (width < 1) throw new ArgumentOutOfRangeException(nameof(width), width, "width must be positive.");
        if (vocabulary < 1) throw new ArgumentOutOfRangeException(nameof(vocabulary), vocabulary, "vocabulary must be positive.");
        if (ids.Length < (long)batch * length) throw new ArgumentException($"ids have {ids.Length} values, expected [{batch}, {length}].", nameof(ids));
        CheckLength(table, (long)vocabulary * width, nameof(table));
        CheckLength(positional, (long)length * width, nameof(positional));
        CheckLength(output, (long)batch * length * width, nameof(output));
        CheckDisjoint(output, nameof(output), table, nameof(table));
        CheckDisjoint(output, nameof(output), positional, nameof(positional));
        int count = batch * length * width;
        if (count == 0) return;
        Launch("token embedding", () => _embedTokens(count, ids, table, positional, output, new TokenExtent(batch, length, width, vocabulary)));
    }

    /// <summary>
    /// output[r, :] = x[rows[r], :] for r &lt; <paramref name="count"/> (the pooled rows), x [sourceRows, width] with row stride
    /// <paramref name="sourceStride"/>, output with <paramref name="outputStride"/>; an index outside x yields a NaN row.
    /// </summary>
    public void GatherRows(ArrayView<float> x, int sourceRows, int width, int sourceStride, ArrayView<int> rows, int count,
        ArrayView<float> output, int outputStride)
    {
        if (width < 1) throw new ArgumentOutOfRangeException(nameof(width), width, "width must be positive.");
        if (count < 0) throw new ArgumentOutOfRangeException(nameof(count), count, "count must be non-negative.");
        CheckMatrix(x, sourceRows, width, sourceStride, nameof(x));
        if (rows.Length < count) throw new ArgumentException($"rows have {rows.Length} values, expected {count}.", nameof(rows));
        CheckMatrix(output, count, width, outputStride, nameof(output));
        CheckDisjoint(output, nameof(output), x, nameof(x));
        if (count == 0) return;
        Launch("row gather", () => _gatherRows(count * width, x, rows, output, new GatherExtent(count, width, sourceRows, sourceStride, outputStride)));
    }

    /// <summary>values ·= factor, in place.</summary>
    public void Scale(ArrayView<float> values, float factor)
    {
        CheckInt(values.Length, nameof(values));
        if (values.Length == 0) return;
        Launch("scale", () => _scale((int)values.Length, values, factor));
    }

    /// <summary>values = act(values), in place (the CPU's Activations.Apply; the GEMM and convolution fuse it instead).</summary>
    public void Activate(ArrayView<float> values, Activation activation)
    {
        if ((uint)activation > (uint)Activation.Relu) throw new ArgumentOutOfRangeException(nameof(activation), activation, "Unknown activation.");
        CheckInt(values.Length, nameof(values));
        if (values.Length == 0 || activation == Activation.None) return;
        Launch("activation", () => _activate((int)values.Length, values, (int)activation));
    }

    /// <summary>
    /// Average pool over NHWC, k×k window, stride k, floor: x [B, H, W, C] → y [B, ⌊H/k⌋, ⌊W/k⌋, C]; k = H = W is the global mean.
    /// The views must not overlap.
    /// </summary>
    public void AveragePool(ArrayView<float> input, int batch, int height, int width, int channels, int kernel, ArrayView<float> output)
    {
        if (kernel < 1) throw new ArgumentOutOfRangeException(nameof(kernel), kernel, "kernel must be positive.");
        CheckImage(input, batch, height, width, channels, nameof(input));
        if (height < kernel || width < kernel)
            throw new ArgumentException($"a {kernel}×{kernel} pool does not fit an input of {height}×{width}.", nameof(kernel));
        int outHeight = height / kernel, outWidth = width / kernel;
        CheckImage(output, batch, outHeight, outWidth, channels, nameof(output));
        CheckDisjoint(output, nameof(output), input, nameof(input));
        int count = batch * outHeight * outWidth * channels;
        if (count == 0) return;
        Launch("average pool", () => _averagePool(count, input, output, new ImageExtent(batch, height, width, channels), kernel));
    }

    // ------------------------------------------------------------------ attention pool

    /// <summary>Scratch floats <see cref="AttentionPoolHeads"/> needs: B·H·(2D + n).</summary>
    public static long AttentionPoolScratchLength(int batch, int tokens, int width, int heads) => (long)batch * heads * (2L * width + tokens);

    /// <summary>
    /// The ModifiedResNet attention pool's heads, given the projected query [B, D] (q_proj of token 0, bias included) and the
    /// tokens [B, n, D] (positional embedding added): for head h, t = (q_h·Wk_h)/√hd ∈ R^D with Wk_h rows h·hd.. of
    /// <paramref name="keyWeight"/> (k_proj.weight [D, D] as stored), p = softmax over tokens of t·x_j, mean = Σ_j p_j x_j, and
    /// output[b, h·hd..(h + 1)·hd) = Wv_h·mean + bv_h with <paramref name="valueWeight"/> = v_proj.weight [D, D] and
    /// <paramref name="valueBias"/> = v_proj.bias [D]. <paramref name="scratch"/> holds ≥ <see cref="AttentionPoolScratchLength"/>
    /// floats. The output [B, D] must not overlap the inputs or the scratch.
    /// </summary>
    public void AttentionPoolHeads(ArrayView<float> query, ArrayView<float> tokens, int batch, int tokenCount, int width, int heads,
        ArrayView<float> keyWeight, ArrayView<float> valueWeight, ArrayView<float> valueBias, ArrayView<float> scratch, ArrayView<float> output)
    {
        CheckCounts(batch, tokenCount, width);
        if (heads < 1 || width % heads != 0)
            throw new ArgumentException($"width {width} is not a positive multiple of {heads} heads.", nameof(heads));
        CheckLength(query, (long)batch * width, nameof(query));
        CheckLength(tokens, (long)batch * tokenCount * width, nameof(tokens));
        CheckLength(keyWeight, (long)width * width, nameof(keyWeight));
        CheckLength(valueWeight, (long)width * width, nameof(valueWeight));
        CheckVector(valueBias, width, nameof(valueBias));
        CheckLength(scratch, AttentionPoolScratchLength(batch, tokenCount, width, heads), nameof(scratch));
        CheckLength(output, (long)batch * width, nameof(output));
        foreach (var (view, name) in new[] { (query, nameof(query)), (tokens, nameof(tokens)), (keyWeight, nameof(keyWeight)),
            (valueWeight, nameof(valueWeight)), (valueBias, nameof(valueBias)), (scratch, nameof(scratch)) })
            CheckDisjoint(output, nameof(output), view, name);
        CheckDisjoint(scratch, nameof(scratch), tokens, nameof(tokens));
        CheckDisjoint(scratch, nameof(scratch), query, nameof(query));
        if (batch == 0) return;
        Launch("attention pool", () => _attentionPool(new KernelConfig(batch * heads, AttentionPoolKernel.Threads), query, tokens,
            keyWeight, valueWeight, valueBias, scratch, output, new AttentionPoolShape(batch, tokenCount, width, heads)));
    }

    /// <summary>
    /// Whether a product of <paramref name="m"/> × <paramref name="n"/> outputs runs on 128 × 128 tiles with 8 × 8 register blocks
    /// (GemmKernel.MultiplyLarge) rather than 64 × 64 tiles with 4 × 4 blocks: when it has at least 128 rows and columns and
    /// enough large tiles to give every multiprocessor one. Smaller products (batch 1: 50 rows) keep the small tiles, which
    /// waste less on the edges and spread over more multiprocessors.
    /// </summary>
    public static bool UsesLargeTiles(int m, int n, int multiprocessors) =>
        m >= GemmKernel.LargeTile && n >= GemmKernel.LargeTile
        && (long)Tiles(m, GemmKernel.LargeTile) * Tiles(n, GemmKernel.LargeTile) >= Math.Max(1, multiprocessors);

    /// <summary>The four compiled forms of the GEMM over one kind of left operand: small or large tiles × fp32 or fp16 weights.</summary>
    sealed class GemmVariants<TRows> where TRows : struct, IGemmRows
    {
        readonly Action<KernelConfig, TRows, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmEpilogue> _small, _large;
        readonly Action<KernelConfig, TRows, ArrayView<float>, ArrayView<Half>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmEpilogue> _smallHalf, _largeHalf;

        public GemmVariants(Accelerator accelerator)
        {
            _small = accelerator.LoadStreamKernel<TRows, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmEpilogue>(
                GemmKernel.Multiply<TRows, float, Float32Weights>);
            _large = accelerator.LoadStreamKernel<TRows, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmEpilogue>(
                GemmKernel.MultiplyLarge<TRows, float, Float32Weights>);
            _smallHalf = accelerator.LoadStreamKernel<TRows, ArrayView<float>, ArrayView<Half>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmEpilogue>(
                GemmKernel.Multiply<TRows, Half, Float16Weights>);
            _largeHalf = accelerator.LoadStreamKernel<TRows, ArrayView<float>, ArrayView<Half>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmEpilogue>(
                GemmKernel.MultiplyLarge<TRows, Half, Float16Weights>);
        }

        public void Run(bool large, TRows rows, ArrayView<float> x, GpuMatrix weights, ArrayView<float> bias, ArrayView<float> residual,
            ArrayView<float> y, GemmEpilogue epilogue)
        {
            int tile = large ? GemmKernel.LargeTile : GemmKernel.TileM;
            var config = new KernelConfig(Tiles(rows.Rows, tile) * Tiles(epilogue.N, tile), GemmKernel.Threads);
            bool half = weights.Precision == GpuWeightPrecision.Float16;
            if (half) (large ? _largeHalf : _smallHalf)(config, rows, x, weights.HalfView, bias, residual, y, epilogue);
            else (large ? _large : _small)(config, rows, x, weights.View, bias, residual, y, epilogue);
        }
    }

    // ------------------------------------------------------------------ checks

    static int Tiles(int size, int tile) => (size + tile - 1) / tile;

    ArrayView<float> OrNothing(ArrayView<float> view) => view.Length > 0 ? view : _nothing.View;

    void Launch(string kernel, Action launch)
    {
        try { launch(); }
        catch (Exception e) when (e is AcceleratorException or InvalidOperationException or NotSupportedException)
        {
            throw new GpuException($"the {kernel} kernel failed to launch on {_device}: {e.Message}", e);
        }
    }

    static void CheckInt(long value, string name)
    {
        if (value > int.MaxValue) throw new ArgumentException($"{name}: {value} elements exceed the kernels' 32-bit indexing.", name);
    }

    static void CheckLength<T>(ArrayView<T> view, long required, string name) where T : unmanaged
    {
        CheckInt(required, name);
        if (view.Length < required) throw new ArgumentException($"{name} has {view.Length} elements, expected at least {required}.", name);
    }

    static void CheckVector(ArrayView<float> view, int length, string name)
    {
        if (view.Length != length) throw new ArgumentException($"{name} has {view.Length} elements, expected {length}.", name);
    }

    /// <summary>Rows × columns with a row stride ≥ columns, held by the view ((rows − 1)·stride + columns floats).</summary>
    static void CheckMatrix(ArrayView<float> view, int rows, int columns, int stride, string name)
    {
        if (rows < 0) throw new ArgumentOutOfRangeException(name, rows, $"{name}: rows must be non-negative.");
        if (stride < columns) throw new ArgumentOutOfRangeException(name, stride, $"{name}: stride {stride} is shorter than a row of {columns}.");
        long required = rows == 0 ? 0 : (long)(rows - 1) * stride + columns;
        if (view.Length < required)
            throw new ArgumentException($"{name} has {view.Length} elements but [{rows}, {columns}] with row stride {stride} needs at least {required}.", name);
        CheckInt(view.Length, name);
    }

    static void CheckImage(ArrayView<float> view, int batch, int height, int width, int channels, string name)
    {
        if (batch < 0 || height < 1 || width < 1 || channels < 1)
            throw new ArgumentException($"{name}: batch must be non-negative and height, width and channels positive (got [{batch}, {height}, {width}, {channels}]).", name);
        CheckLength(view, (long)batch * height * width * channels, name);
    }

    static void CheckCounts(int batch, int tokens, int width)
    {
        if (batch < 0) throw new ArgumentOutOfRangeException(nameof(batch), batch, "batch must be non-negative.");
        if (tokens < 1) throw new ArgumentOutOfRangeException(nameof(tokens), tokens, "tokens must be positive.");
        if (width < 1) throw new ArgumentOutOfRangeException(nameof(width), width, "width must be positive.");
    }

    void CheckEpilogue(ArrayView<float> y, int m, int n, int yStride, ArrayView<float> bias, Activation activation, ArrayView<float> residual)
    {
        if ((uint)activation > (uint)Activation.Relu) throw new ArgumentOutOfRangeException(nameof(activation), activation, "Unknown activation.");
        CheckMatrix(y, m, n, yStride, nameof(y));
        if (bias.Length != 0 && bias.Length != n)
            throw new ArgumentException($"bias has {bias.Length} elements, expected 0 (no bias) or N = {n}.", nameof(bias));
        if (residual.Length != 0)
        {
            CheckMatrix(residual, m, n, yStride, nameof(residual));
            if (!SameStart(residual, y)) CheckDisjoint(y, nameof(residual), residual, nameof(residual), "must be y itself or not overlap it");
        }
        CheckDisjoint(y, nameof(y), bias, nameof(bias));
    }

    static bool SameStart(ArrayView<float> a, ArrayView<float> b)
    {
        IContiguousArrayView x = a, y = b;
        return x.Buffer is not null && ReferenceEquals(x.Buffer, y.Buffer) && x.IndexInBytes == y.IndexInBytes;
    }

    /// <summary>Throws when two views share memory (same buffer, intersecting ranges).</summary>
    static void CheckDisjoint<T, U>(ArrayView<T> a, string name, ArrayView<U> b, string other, string? rule = null)
        where T : unmanaged where U : unmanaged
    {
        IContiguousArrayView x = a, y = b;
        if (a.Length == 0 || b.Length == 0 || x.Buffer is null || !ReferenceEquals(x.Buffer, y.Buffer)) return;
        long aStart = x.IndexInBytes, aEnd = aStart + x.LengthInBytes, bStart = y.IndexInBytes, bEnd = bStart + y.LengthInBytes;
        if (aStart < bEnd && bStart < aEnd)
            throw new ArgumentException(rule is null ? $"{name} must not overlap {other}." : $"{name} {rule}.", name);
    }

    /// <summary>Releases the one-float placeholder buffer the kernels pass for an absent bias or residual; the device (<see cref="GpuDevice.Dispose"/>) calls it.</summary>
    public void Dispose() => _nothing.Dispose();
}
