using ILGPU;

namespace ManagedClip.Gpu.Kernels;

/// <summary>
/// The GEMM's large-tile form, for products big enough to fill the device with 128 × 128 tiles (<see cref="GpuKernels.UsesLargeTiles"/>):
/// same operands, epilogue, edge handling and summation order as <see cref="GemmKernel.Multiply"/>, but each of the 256 threads
/// owns an 8 × 8 register block (rows ty + 16i, columns tx + 16j, i, j &lt; 8) and K advances 8 at a time.
/// <para>
/// Why: per k-step a thread does 8 + 8 shared loads for 64 FMAs, where the 4 × 4 block does 4 + 4 for 16. A GPU issues
/// about one shared-load instruction per clock per multiprocessor against four FMA instructions, so the 4 × 4 block is
/// bound by shared memory at about half the FMA peak, while 8 × 8 balances the two. It needs about 100 registers a thread
/// and a full 128 × 128 tile of output to pay off, hence the two forms.
/// </para>
/// Loads: thread t fetches A[t / 8 + 32r, t % 8] (eight consecutive threads read 32 consecutive bytes of a row) and
/// W[t / 128 + 2r, t % 128] (a warp reads 128 consecutive bytes), r &lt; 4, prefetched into registers a step ahead.
/// A's tile is stored transposed with rows 128 + 4 floats apart: the eight k-columns of a warp's stores then land in
/// eight different groups of four banks (conflict-free).
/// </summary>
internal static partial class GemmKernel
{
    public const int LargeTile = 128, LargeTileK = 8;
    const int LargeATileStride = LargeTile + 4;

    public static void MultiplyLarge<TRows, TWeight, TConvert>(TRows rows, ArrayView<float> x, ArrayView<TWeight> weights, ArrayView<float> bias,
        ArrayView<float> residual, ArrayView<float> y, GemmEpilogue e)
        where TRows : struct, IGemmRows where TWeight : unmanaged where TConvert : struct, IWeightConversion<TWeight>
    {
        var aTile = SharedMemory.Allocate<float>(LargeTileK * LargeATileStride);   // [k][m]
        var wTile = SharedMemory.Allocate<float>(LargeTileK * LargeTile);          // [k][n]

        int t = Group.IdxX, tx = t % 16, ty = t / 16;
        int tilesN = (e.N + LargeTile - 1) / LargeTile;
        int m0 = Grid.IdxX / tilesN * LargeTile, n0 = Grid.IdxX % tilesN * LargeTile;
        int aRow = m0 + t / LargeTileK, aColumn = t % LargeTileK;
        int wRow = t / LargeTile, wColumn = n0 + t % LargeTile;
        bool wColumnInside = wColumn < e.N;
        var convert = default(TConvert);

        RowOrigin r0 = rows.Row(aRow), r1 = rows.Row(aRow + 32), r2 = rows.Row(aRow + 64), r3 = rows.Row(aRow + 96);
        var column = rows.Column(aColumn);
        float a0 = rows.Load(x, r0, column), a1 = rows.Load(x, r1, column), a2 = rows.Load(x, r2, column), a3 = rows.Load(x, r3, column);
        float w0 = LoadWeight(weights, convert, wRow, wColumn, wColumnInside, e), w1 = LoadWeight(weights, convert, wRow + 2, wColumn, wColumnInside, e);
        float w2 = LoadWeight(weights, convert, wRow + 4, wColumn, wColumnInside, e), w3 = LoadWeight(weights, convert, wRow + 6, wColumn, wColumnInside, e);

        var acc = new Block8x8();
        int aStore = aColumn * LargeATileStride + t / LargeTileK, wStore = wRow * LargeTile + t % LargeTile;
        for (int k0 = 0; k0 < e.K; k0 += LargeTileK)
        {
            aTile[aStore] = a0; aTile[aStore + 32] = a1; aTile[aStore + 64] = a2; aTile[aStore + 96] = a3;
            wTile[wStore] = w0; wTile[wStore + 2 * LargeTile] = w1; wTile[wStore + 4 * LargeTile] = w2; wTile[wStore + 6 * LargeTile] = w3;
            Group.Barrier();

            int next = k0 + LargeTileK;
            if (next < e.K)
            {
                column = rows.Column(next + aColumn);
                a0 = rows.Load(x, r0, column); a1 = rows.Load(x, r1, column); a2 = rows.Load(x, r2, column); a3 = rows.Load(x, r3, column);
                w0 = LoadWeight(weights, convert, next + wRow, wColumn, wColumnInside, e); w1 = LoadWeight(weights, convert, next + wRow + 2, wColumn, wColumnInside, e);
                w2 = LoadWeight(weights, convert, next + wRow + 4, wColumn, wColumnInside, e); w3 = LoadWeight(weights, convert, next + wRow + 6, wColumn, wColumnInside, e);
            }

            for (int kk = 0; kk < LargeTileK; kk++)
            {
                int ab = kk * LargeATileStride + ty, wb = kk * LargeTile + tx;
                acc.Add(aTile[ab], aTile[ab + 16], aTile[ab + 32], aTile[ab + 48], aTile[ab + 64], aTile[ab + 80], aTile[ab + 96], aTile[ab + 112],
                    wTile[wb], wTile[wb + 16], wTile[wb + 32], wTile[wb + 48], wTile[wb + 64], wTile[wb + 80], wTile[wb + 96], wTile[wb + 112]);
            }
            Group.Barrier();
        }

        StoreWide(acc.C00, acc.C01, acc.C02, acc.C03, acc.C04, acc.C05, acc.C06, acc.C07, m0 + ty, n0 + tx, rows.Rows, bias, residual, y, e);
        StoreWide(acc.C10, acc.C11, acc.C12, acc.C13, acc.C14, acc.C15, acc.C16, acc.C17, m0 + ty + 16, n0 + tx, rows.Rows, bias, residual, y, e);
        StoreWide(acc.C20, acc.C21, acc.C22, acc.C23, acc.C24, acc.C25, acc.C26, acc.C27, m0 + ty + 32, n0 + tx, rows.Rows, bias, residual, y, e);
        StoreWide(acc.C30, acc.C31, acc.C32, acc.C33, acc.C34, acc.C35, acc.C36, acc.C37, m0 + ty + 48, n0 + tx, rows.Rows, bias, residual, y, e);
        StoreWide(acc.C40, acc.C41, acc.C42, acc.C43, acc.C44, acc.C45, acc.C46, acc.C47, m0 + ty + 64, n0 + tx, rows.Rows, bias, residual, y, e);
        StoreWide(acc.C50, acc.C51, acc.C52, acc.C53, acc.C54, acc.C55, acc.C56, acc.C57, m0 + ty + 80, n0 + tx, rows.Rows, bias, residual, y, e);
        StoreWide(acc.C60, acc.C61, acc.C62, acc.C63, acc.C64, acc.C65, acc.C66, acc.C67, m0 + ty + 96, n0 + tx, rows.Rows, bias, residual, y, e);
        StoreWide(acc.C70, acc.C71, acc.C72, acc.C73, acc.C74, acc.C75, acc.C76, acc.C77, m0 + ty + 112, n0 + tx, rows.Rows, bias, residual, y, e);
    }

    /// <summary>One row of the thread's 8 × 8 block: columns column, +16, …, +112, each through the epilogue if inside y.</summary>
    static void StoreWide(float s0, float s1, float s2, float s3, float s4, float s5, float s6, float s7, int row, int column, int m,
        ArrayView<float> bias, ArrayView<float> residual, ArrayView<float> y, GemmEpilogue e)
    {
        if (row >= m) return;
        Finish(s0, row, column, bias, residual, y, e);
        Finish(s1, row, column + 16, bias, residual, y, e);
        Finish(s2, row, column + 32, bias, residual, y, e);
        Finish(s3, row, column + 48, bias, residual, y, e);
        Finish(s4, row, column + 64, bias, residual, y, e);
        Finish(s5, row, column + 80, bias, residual, y, e);
        Finish(s6, row, column + 96, bias, residual, y, e);
        Finish(s7, row, column + 112, bias, residual, y, e);
    }
}

/// <summary>A thread's 8 × 8 block of accumulators, in registers: C[i, j] += a_i · b_j.</summary>
internal struct Block8x8
{
    public float C00, C01, C02, C03, C04, C05, C06, C07, C10, C11, C12, C13, C14, C15, C16, C17, C20, C21, C22, C23, C24, C25, C26, C27, C30, C31, C32, C33, C34, C35, C36, C37, C40, C41, C42, C43, C44, C45, C46, C47, C50, C51, C52, C53, C54, C55, C56, C57, C60, C61, C62, C63, C64, C65, C66, C67, C70, C71, C72, C73, C74, C75, C76, C77;

    public void Add(float a0, float a1, float a2, float a3, float a4, float a5, float a6, float a7, float b0, float b1, float b2, float b3, float b4, float b5, float b6, float b7)
    {
        C00 += a0 * b0; C01 += a0 * b1; C02 += a0 * b2; C03 += a0 * b3; C04 += a0 * b4; C05 += a0 * b5; C06 += a0 * b6; C07 += a0 * b7;
        C10 += a1 * b0; C11 += a1 * b1; C12 += a1 * b2; C13 += a1 * b3; C14 += a1 * b4; C15 += a1 * b5; C16 += a1 * b6; C17 += a1 * b7;
        C20 += a2 * b0; C21 += a2 * b1; C22 += a2 * b2; C23 += a2 * b3; C24 += a2 * b4; C25 += a2 * b5; C26 += a2 * b6; C27 += a2 * b7;
        C30 += a3 * b0; C31 += a3 * b1; C32 += a3 * b2; C33 += a3 * b3; C34 += a3 * b4; C35 += a3 * b5; C36 += a3 * b6; C37 += a3 * b7;
        C40 += a4 * b0; C41 += a4 * b1; C42 += a4 * b2; C43 += a4 * b3; C44 += a4 * b4; C45 += a4 * b5; C46 += a4 * b6; C47 += a4 * b7;
        C50 += a5 * b0; C51 += a5 * b1; C52 += a5 * b2; C53 += a5 * b3; C54 += a5 * b4; C55 += a5 * b5; C56 += a5 * b6; C57 += a5 * b7;
        C60 += a6 * b0; C61 += a6 * b1; C62 += a6 * b2; C63 += a6 * b3; C64 += a6 * b4; C65 += a6 * b5; C66 += a6 * b6; C67 += a6 * b7;
        C70 += a7 * b0; C71 += a7 * b1; C72 += a7 * b2; C73 += a7 * b3; C74 += a7 * b4; C75 += a7 * b5; C76 += a7 * b6; C77 += a7 * b7;
    }
}
