using ILGPU;
using Half = ILGPU.Half;

namespace ManagedClip.Gpu.Kernels;

/// <summary>
/// Where the GEMM's left operand A [M, K] comes from. A thread loads the same few rows at every K-step and one column per
/// step, so the index arithmetic is split: <see cref="Row"/> once per row and kernel (for im2col, the divisions that find the
/// pixel), <see cref="Column"/> once per K-step (the divisions that find the tap), and <see cref="Load"/> per element, which
/// returns A[row, k], or 0 outside [0, M) × [0, K) (the tiles at the edges are zero-padded). A dense row-major matrix, or the
/// implicit im2col matrix of a convolution.
/// </summary>
internal interface IGemmRows
{
    int Rows { get; }
    RowOrigin Row(int row);
    ColumnTap Column(int k);
    float Load(ArrayView<float> x, RowOrigin row, ColumnTap column);
}

/// <summary>A row of A, located: its offset in x (for im2col: the image's), its window's top-left input pixel, and whether it exists.</summary>
internal readonly struct RowOrigin(int offset, int y, int x, bool inside)
{
    public readonly int Offset = offset, Y = y, X = x;
    public readonly bool Inside = inside;
}

/// <summary>A column of A, located: k itself, and for im2col its tap (ky, kx) and channel; whether it exists.</summary>
internal readonly struct ColumnTap(int k, int ky, int kx, int channel, bool inside)
{
    public readonly int K = k, Ky = ky, Kx = kx, Channel = channel;
    public readonly bool Inside = inside;
}

/// <summary>A row-major [M, K] matrix with row stride <see cref="Stride"/>.</summary>
internal readonly struct DenseRows(int rows, int columns, int stride) : IGemmRows
{
    public readonly int M = rows, K = columns, Stride = stride;
    public int Rows => M;
    public RowOrigin Row(int row) => new(row * Stride, 0, 0, row < M);
    public ColumnTap Column(int k) => new(k, 0, 0, 0, k < K);
    public float Load(ArrayView<float> x, RowOrigin row, ColumnTap column) => row.Inside && column.Inside ? x[row.Offset + column.K] : 0f;
}

/// <summary>
/// The im2col matrix of an NHWC batch [B, H, W, C] under a k×k window (stride s, zero padding p), never stored: row
/// (b, oy, ox), column (ky, kx, c) is x[b, oy·s − p + ky, ox·s − p + kx, c], or 0 where the window hangs over the border.
/// The column order (ky, kx, c) is that of the weights' rows (<see cref="GpuConvolutionFilter"/>), as on the CPU.
/// </summary>
internal readonly struct ConvolutionRows(int batch, int height, int width, int channels, int outHeight, int outWidth,
    int kernel, int stride, int padding) : IGemmRows
{
    public readonly int Batch = batch, Height = height, Width = width, Channels = channels, OutHeight = outHeight, OutWidth = outWidth,
        Kernel = kernel, Stride = stride, Padding = padding;
    public int Rows => Batch * OutHeight * OutWidth;

    public RowOrigin Row(int row)
    {
        int ox = row % OutWidth, oy = row / OutWidth % OutHeight, b = row / (OutWidth * OutHeight);
        return new RowOrigin(b * Height * Width * Channels, oy * Stride - Padding, ox * Stride - Padding, row < Rows);
    }

    public ColumnTap Column(int k)
    {
        int tap = k / Channels;
        return new ColumnTap(k, tap / Kernel, tap % Kernel, k % Channels, k < Kernel * Kernel * Channels);
    }

    public float Load(ArrayView<float> x, RowOrigin row, ColumnTap column)
    {
        int iy = row.Y + column.Ky, ix = row.X + column.Kx;
        bool inside = row.Inside && column.Inside && iy >= 0 && iy < Height && ix >= 0 && ix < Width;
        return inside ? x[row.Offset + (iy * Width + ix) * Channels + column.Channel] : 0f;
    }
}

/// <summary>How the GEMM turns a stored weight into the fp32 it multiplies by: as it is, or fp16 widened in a register.</summary>
internal interface IWeightConversion<TWeight> where TWeight : unmanaged
{
    float ToFloat(TWeight weight);
}

internal readonly struct Float32Weights : IWeightConversion<float>
{
    public float ToFloat(float weight) => weight;
}

internal readonly struct Float16Weights : IWeightConversion<Half>
{
    public float ToFloat(Half weight) => weight;
}

/// <summary>N, K, y's row stride and the epilogue of one GEMM launch (flags as ints: kernel arguments are plain values).</summary>
internal readonly struct GemmEpilogue(int n, int k, int yStride, bool hasBias, bool hasResidual, int activation)
{
    public readonly int N = n, K = k, YStride = yStride, HasBias = hasBias ? 1 : 0, HasResidual = hasResidual ? 1 : 0, Activation = activation;
}

/// <summary>
/// y [M, N] = act(A [M, K]·W [K, N] + bias + residual), W row-major [K, N] (N contiguous), fp32 arithmetic; W stored as fp32
/// or as fp16 (half the bytes to stream, widened to fp32 as it is loaded: <see cref="IWeightConversion{TWeight}"/>).
/// <para>
/// Tiling: a group of 256 threads owns a 64 × 64 tile of y and walks K in steps of 16. Per step, the group stages
/// A[64 rows, 16] (transposed, [16][64 + 1]: the +1 keeps the transposing stores free of bank conflicts) and
/// W[16, 64] in shared memory; each thread then does 16 × (4 + 4 shared loads, 16 FMAs) on its 4 × 4 register block.
/// Thread (tx, ty) = (t % 16, t / 16) owns rows ty + 16i and columns tx + 16j (i, j &lt; 4): 16 neighbouring threads
/// read 16 neighbouring floats of W's tile (conflict-free) and share one A value (a broadcast), and in the epilogue they
/// store 16 neighbouring floats of a row of y (coalesced).
/// </para>
/// <para>
/// Loads: thread t fetches A[ty + 16r, tx] and W[t / 64 + 4r, t % 64], r &lt; 4: sixteen (A) and sixty-four (W) consecutive
/// threads read consecutive addresses. Its four rows of A are located once (<see cref="IGemmRows.Row"/>), its column once
/// per step (<see cref="IGemmRows.Column"/>), so implicit im2col costs a few integer operations per load, not six divisions. The next K-step's eight values are fetched into registers before the current step's
/// arithmetic, so the global loads are in flight while the FMAs run (one shared buffer, two barriers a step).
/// Edges: A and W are zero-padded past M, N and K in the tiles, and only in-range outputs are stored, so any M, K, N work.
/// </para>
/// Each output sums its K products from zero in k order (one accumulator), then adds bias and residual, then applies the
/// activation: the scalar twin's order (kernels' Gemm.Finish). The residual is read at the element about to be written,
/// by the thread that writes it, so residual = y (y += A·W + b) is safe.
/// </summary>
internal static partial class GemmKernel
{
    public const int Threads = 256;
    public const int TileM = 64, TileN = 64, TileK = 16;
    const int ATileStride = TileM + 1;

    public static void Multiply<TRows, TWeight, TConvert>(TRows rows, ArrayView<float> x, ArrayView<TWeight> weights, ArrayView<float> bias,
        ArrayView<float> residual, ArrayView<float> y, GemmEpilogue e)
        where TRows : struct, IGemmRows where TWeight : unmanaged where TConvert : struct, IWeightConversion<TWeight>
    {
        var aTile = SharedMemory.Allocate<float>(TileK * ATileStride);   // [k][m]
        var wTile = SharedMemory.Allocate<float>(TileK * TileN);         // [k][n]

        int t = Group.IdxX, tx = t % 16, ty = t / 16;
        int tilesN = (e.N + TileN - 1) / TileN;
        int m0 = Grid.IdxX / tilesN * TileM, n0 = Grid.IdxX % tilesN * TileN;
        int wRow = t / TileN, wColumn = n0 + t % TileN;
        bool wColumnInside = wColumn < e.N;
        var convert = default(TConvert);

        // The thread's four rows of A, located once; then the first K-step's values, in registers.
        RowOrigin r0 = rows.Row(m0 + ty), r1 = rows.Row(m0 + ty + 16), r2 = rows.Row(m0 + ty + 32), r3 = rows.Row(m0 + ty + 48);
        var column = rows.Column(tx);
        float a0 = rows.Load(x, r0, column), a1 = rows.Load(x, r1, column), a2 = rows.Load(x, r2, column), a3 = rows.Load(x, r3, column);
        float w0 = LoadWeight(weights, convert, wRow, wColumn, wColumnInside, e), w1 = LoadWeight(weights, convert, wRow + 4, wColumn, wColumnInside, e);
        float w2 = LoadWeight(weights, convert, wRow + 8, wColumn, wColumnInside, e), w3 = LoadWeight(weights, convert, wRow + 12, wColumn, wColumnInside, e);

        var acc = new Block4x4();
        for (int k0 = 0; k0 < e.K; k0 += TileK)
        {
            aTile[tx * ATileStride + ty] = a0; aTile[tx * ATileStride + ty + 16] = a1;
            aTile[tx * ATileStride + ty + 32] = a2; aTile[tx * ATileStride + ty + 48] = a3;
            wTile[wRow * TileN + t % TileN] = w0; wTile[(wRow + 4) * TileN + t % TileN] = w1;
            wTile[(wRow + 8) * TileN + t % TileN] = w2; wTile[(wRow + 12) * TileN + t % TileN] = w3;
            Group.Barrier();

            int next = k0 + TileK;
            if (next < e.K)
            {
                column = rows.Column(next + tx);
                a0 = rows.Load(x, r0, column); a1 = rows.Load(x, r1, column); a2 = rows.Load(x, r2, column); a3 = rows.Load(x, r3, column);
                w0 = LoadWeight(weights, convert, next + wRow, wColumn, wColumnInside, e); w1 = LoadWeight(weights, convert, next + wRow + 4, wColumn, wColumnInside, e);
                w2 = LoadWeight(weights, convert, next + wRow + 8, wColumn, wColumnInside, e); w3 = LoadWeight(weights, convert, next + wRow + 12, wColumn, wColumnInside, e);
            }

            for (int kk = 0; kk < TileK; kk++)
            {
                int ab = kk * ATileStride + ty, wb = kk * TileN + tx;
                acc.Add(aTile[ab], aTile[ab + 16], aTile[ab + 32], aTile[ab + 48],
                    wTile[wb], wTile[wb + 16], wTile[wb + 32], wTile[wb + 48]);
            }
            Group.Barrier();
        }

        Store(acc.C00, acc.C01, acc.C02, acc.C03, m0 + ty, n0 + tx, rows.Rows, bias, residual, y, e);
        Store(acc.C10, acc.C11, acc.C12, acc.C13, m0 + ty + 16, n0 + tx, rows.Rows, bias, residual, y, e);
        Store(acc.C20, acc.C21, acc.C22, acc.C23, m0 + ty + 32, n0 + tx, rows.Rows, bias, residual, y, e);
        Store(acc.C30, acc.C31, acc.C32, acc.C33, m0 + ty + 48, n0 + tx, rows.Rows, bias, residual, y, e);
    }

    static float LoadWeight<TWeight, TConvert>(ArrayView<TWeight> weights, TConvert convert, int k, int column, bool columnInside, GemmEpilogue e)
        where TWeight : unmanaged where TConvert : struct, IWeightConversion<TWeight> =>
        columnInside && k < e.K ? convert.ToFloat(weights[k * e.N + column]) : 0f;

    /// <summary>One row of the thread's block: columns column, +16, +32, +48, each through the epilogue if inside y.</summary>
    static void Store(float s0, float s1, float s2, float s3, int row, int column, int m, ArrayView<float> bias, ArrayView<float> residual,
        ArrayView<float> y, GemmEpilogue e)
    {
        if (row >= m) return;
        Finish(s0, row, column, bias, residual, y, e);
        Finish(s1, row, column + 16, bias, residual, y, e);
        Finish(s2, row, column + 32, bias, residual, y, e);
        Finish(s3, row, column + 48, bias, residual, y, e);
    }

    static void Finish(float s, int row, int column, ArrayView<float> bias, ArrayView<float> residual, ArrayView<float> y, GemmEpilogue e)
    {
        if (column >= e.N) return;
        int at = row * e.YStride + column;
        if (e.HasBias != 0) s += bias[column];
        if (e.HasResidual != 0) s += residual[at];
        y[at] = DeviceMath.Activate(s, e.Activation);
    }
}

/// <summary>A thread's 4 × 4 block of accumulators, in registers: C[i, j] += a_i · b_j.</summary>
internal struct Block4x4
{
    public float C00, C01, C02, C03, C10, C11, C12, C13, C20, C21, C22, C23, C30, C31, C32, C33;

    public void Add(float a0, float a1, float a2, float a3, float b0, float b1, float b2, float b3)
    {
        C00 += a0 * b0; C01 += a0 * b1; C02 += a0 * b2; C03 += a0 * b3;
        C10 += a1 * b0; C11 += a1 * b1; C12 += a1 * b2; C13 += a1 * b3;
        C20 += a2 * b0; C21 += a2 * b1; C22 += a2 * b2; C23 += a2 * b3;
        C30 += a3 * b0; C31 += a3 * b1; C32 += a3 * b2; C33 += a3 * b3;
    }
}
