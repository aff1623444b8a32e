using ILGPU;

namespace ManagedClip.Gpu.Kernels;

/// <summary>[B, C, H, W] or [B, H, W, C] extents of an image batch.</summary>
internal readonly struct ImageExtent(int batch, int height, int width, int channels)
{
    public readonly int Batch = batch, Height = height, Width = width, Channels = channels;
}

/// <summary>Extents of the token kernels: batch, tokens per item (or rows), width, and one more count each kernel names.</summary>
internal readonly struct TokenExtent(int batch, int tokens, int width, int extra)
{
    public readonly int Batch = batch, Tokens = tokens, Width = width, Extra = extra;
}

/// <summary>Gather extents: rows gathered, width, the source's rows and both row strides.</summary>
internal readonly struct GatherExtent(int rows, int width, int sourceRows, int sourceStride, int outputStride)
{
    public readonly int Rows = rows, Width = width, SourceRows = sourceRows, SourceStride = sourceStride, OutputStride = outputStride;
}

/// <summary>
/// The data-movement kernels around the GEMMs: one thread per output element (auto-grouped), each reading its source
/// element by index arithmetic. Neighbouring threads write neighbouring outputs (coalesced stores); where a layout change
/// makes the reads strided (NCHW → NHWC, patchify), the reads of a warp still fall in a few rows of the source.
/// </summary>
internal static class ElementwiseKernels
{
    /// <summary>NCHW [B, C, H, W] → NHWC [B, H, W, C]: output element ((b·H + y)·W + x)·C + c.</summary>
    public static void ToChannelsLast(Index1D index, ArrayView<float> input, ArrayView<float> output, ImageExtent s)
    {
        int c = index % s.Channels, pixel = index / s.Channels;
        int x = pixel % s.Width, y = pixel / s.Width % s.Height, b = pixel / (s.Width * s.Height);
        output[index] = input[((b * s.Channels + c) * s.Height + y) * s.Width + x];
    }

    /// <summary>
    /// ViT patchify (im2col of the stride-P patch convolution): pixels [B, C, R, R] → rows [B·g², C·P·P], row (b, gy, gx),
    /// column (c, ky, kx) = pixels[b, c, gy·P + ky, gx·P + kx], the order of conv1.weight's flattened rows. Extent: (B, R, P, C).
    /// </summary>
    public static void Patchify(Index1D index, ArrayView<float> pixels, ArrayView<float> rows, ImageExtent s)
    {
        int size = s.Height, patch = s.Width, grid = size / patch, rowLength = s.Channels * patch * patch;
        int column = index % rowLength, row = index / rowLength;
        int kx = column % patch, ky = column / patch % patch, c = column / (patch * patch);
        int gx = row % grid, gy = row / grid % grid, b = row / (grid * grid);
        rows[index] = pixels[((b * s.Channels + c) * size + gy * patch + ky) * size + gx * patch + kx];
    }

    /// <summary>
    /// output[b, 0] = first[b or 0] + positional[0]; output[b, 1 + i] = rest[b, i] + positional[1 + i]. Extent: (B, tokens n,
    /// width D, firstPerItem 0/1): first is [B, D] (one row per item) or [1, D] (broadcast: the class token), rest [B, n − 1, D].
    /// </summary>
    public static void AssembleTokens(Index1D index, ArrayView<float> first, ArrayView<float> rest, ArrayView<float> positional,
        ArrayView<float> output, TokenExtent s)
    {
        int d = index % s.Width, token = index / s.Width % s.Tokens, b = index / (s.Width * s.Tokens);
        float value = token == 0
            ? first[(s.Extra != 0 ? b : 0) * s.Width + d]
            : rest[(b * (s.Tokens - 1) + token - 1) * s.Width + d];
        output[index] = value + positional[token * s.Width + d];
    }

    /// <summary>
    /// x[b, i] = table[ids[b, i]] + positional[i], ids [B, L] (extent: B, L, width, vocabulary). An id outside the vocabulary
    /// (the host validates ids; a kernel cannot throw) writes NaN rather than reading outside the table.
    /// </summary>
    public static void EmbedTokens(Index1D index, ArrayView<int> ids, ArrayView<float> table, ArrayView<float> positional,
        ArrayView<float> output, TokenExtent s)
    {
        int d = index % s.Width, position = index / s.Width % s.Tokens, token = index / s.Width;
        int id = ids[token];
        output[index] = id >= 0 && id < s.Extra ? table[id * s.Width + d] + positional[position * s.Width + d] : float.NaN;
    }

    /// <summary>output[r, :] = x[rows[r], :] (the pooled rows: class tokens, end-of-text positions). An index outside x writes NaN.</summary>
    public static void GatherRows(Index1D index, ArrayView<float> x, ArrayView<int> rows, ArrayView<float> output, GatherExtent s)
    {
        int d = index % s.Width, r = index / s.Width;
        int source = rows[r];
        output[r * s.OutputStride + d] = source >= 0 && source < s.SourceRows ? x[source * s.SourceStride + d] : float.NaN;
    }

    /// <summary>values[i] = act(values[i]) (Activation as its int value), the GEMM epilogue's element function on its own.</summary>
    public static void Activate(Index1D index, ArrayView<float> values, int activation) => values[index] = DeviceMath.Activate(values[index], activation);

    /// <summary>values[i] ·= factor.</summary>
    public static void Scale(Index1D index, ArrayView<float> values, float factor) => values[index] *= factor;

    /// <summary>
    /// Average pool, k×k window, stride k, floor (PyTorch AvgPool2d(k)): x [B, H, W, C] → y [B, ⌊H/k⌋, ⌊W/k⌋, C]. Each output
    /// sums its window from zero in (ky, kx) order and divides by k², the CPU kernel's order. Extent: the input; k separate.
    /// </summary>
    public static void AveragePool(Index1D index, ArrayView<float> input, ArrayView<float> output, ImageExtent s, int kernel)
    {
        int outHeight = s.Height / kernel, outWidth = s.Width / kernel;
        int c = index % s.Channels, pixel = index / s.Channels;
        int ox = pixel % outWidth, oy = pixel / outWidth % outHeight, b = pixel / (outWidth * outHeight);
        float sum = 0f;
        for (int ky = 0; ky < kernel; ky++)
            for (int kx = 0; kx < kernel; kx++)
                sum += input[((b * s.Height + oy * kernel + ky) * s.Width + ox * kernel + kx) * s.Channels + c];
        output[index] = sum / (kernel * kernel);
    }
}
