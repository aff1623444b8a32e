namespace ManagedClip.Imaging.Jpeg;

/// <summary>
/// libjpeg-turbo 2.1's interblock smoothing of progressive JPEGs (jdcoefct.c decompress_smooth_data, on by default as
/// do_block_smoothing), applied to a component's coefficient blocks before the islow IDCT when
/// <c>smoothing_ok</c> holds (<see cref="JpegDecoder"/>'s WouldSmooth). For every block, the first 9 AC coefficients
/// (zigzag 1..9) that are still zero and not known to full precision are estimated from the DC values of the block's
/// 5x5 neighbourhood; when no AC data at all has arrived, the DC itself is replaced by a weighted average and the
/// estimates use a Gaussian-like kernel instead. Estimates of a coefficient sent with Al &gt; 0 are clamped below 2^Al.
/// <para>
/// The neighbourhood is chosen exactly as libjpeg-turbo 2.1.5 chooses it, quirks included, because they change pixels:
/// block rows are walked per iMCU row (<c>v</c> block rows each), and the row two above is only taken when the block
/// row index within the iMCU row is &gt; 1 or the iMCU row is &gt; 1 (else the row above stands in), the row two below
/// only when the block row is more than 2 from the iMCU row's end or there are 2 more iMCU rows (else the row below
/// stands in), so a component with v = 2 sees a repeated neighbour row in iMCU rows 1 and last - 1; columns come from
/// libjpeg's five sliding registers, which for a component 2 blocks wide leave the first block's DC in the fifth
/// register (see <see cref="Apply"/>). The DC values are the stored (unsmoothed) coefficients of the neighbours.
/// </para>
/// </summary>
internal static class JpegBlockSmoothing
{
    // Natural (row-major) positions of zigzag coefficients 1..9: AC(row, column).
    private const int Ac01 = 1, Ac10 = 8, Ac20 = 16, Ac11 = 9, Ac02 = 2, Ac03 = 3, Ac12 = 10, Ac21 = 17, Ac30 = 24;

    /// <summary>
    /// Smooths one component's blocks in place.
    /// </summary>
    /// <param name="coefficients">the component's blocks of 64 coefficients (natural order), <paramref name="blocksPerRow"/> to a row</param>
    /// <param name="blocksPerRow">blocks allocated per row (the MCU grid's)</param>
    /// <param name="widthInBlocks">blocks that cover the component's width (libjpeg's width_in_blocks)</param>
    /// <param name="heightInBlocks">blocks that cover the component's height (height_in_blocks)</param>
    /// <param name="rowsPerImcuRow">the component's vertical sampling factor: its block rows per iMCU row</param>
    /// <param name="imcuRows">iMCU rows in the frame (total_iMCU_rows)</param>
    /// <param name="quant">the component's quantization table, natural order; the DC and zigzag 1..9 entries are nonzero</param>
    /// <param name="coefficientBits">per zigzag coefficient, the Al of the last scan that carried it, -1 if none did
    /// (libjpeg's coef_bits as latched once all scans are read)</param>
    public static void Apply(Span<short> coefficients, int blocksPerRow, int widthInBlocks, int heightInBlocks,
        int rowsPerImcuRow, int imcuRows, ReadOnlySpan<ushort> quant, ReadOnlySpan<int> coefficientBits)
    {
        // The neighbours' DC values before any block is changed (the DC itself is re-estimated when changeDc).
        var dcs = new int[widthInBlocks * heightInBlocks];
        for (int row = 0; row < heightInBlocks; row++)
            for (int column = 0; column < widthInBlocks; column++)
                dcs[row * widthInBlocks + column] = coefficients[(row * blocksPerRow + column) * 64];

        // Zigzag k = 1..9 in libjpeg's order: AC01, AC10, AC20, AC11, AC02, AC03, AC12, AC21, AC30.
        int bits01 = coefficientBits[1], bits10 = coefficientBits[2], bits20 = coefficientBits[3], bits11 = coefficientBits[4],
            bits02 = coefficientBits[5], bits03 = coefficientBits[6], bits12 = coefficientBits[7], bits21 = coefficientBits[8],
            bits30 = coefficientBits[9];
        // Only when no AC coefficient data is available is the DC interpolated too.
        bool changeDc = bits01 == -1 && bits10 == -1 && bits20 == -1 && bits11 == -1 && bits02 == -1 && bits03 == -1 &&
                        bits12 == -1 && bits21 == -1 && bits30 == -1;
        long q00 = quant[0], q01 = quant[Ac01], q10 = quant[Ac10], q20 = quant[Ac20], q11 = quant[Ac11], q02 = quant[Ac02],
            q03 = quant[Ac03], q12 = quant[Ac12], q21 = quant[Ac21], q30 = quant[Ac30];

        int lastImcuRow = imcuRows - 1;
        // dc[1..25] are libjpeg's DC01..DC25, five sliding registers for each of five rows (two above .. two below):
        // columns two left .. two right, dc[13] the block's own DC.
        Span<int> dc = stackalloc int[26];
        Span<int> rows = stackalloc int[5];
        for (int row = 0; row < heightInBlocks; row++)
        {
            int imcuRow = row / rowsPerImcuRow, blockRow = row % rowsPerImcuRow;
            int blockRows = rowsPerImcuRow;
            if (imcuRow == lastImcuRow && heightInBlocks % rowsPerImcuRow != 0) blockRows = heightInBlocks % rowsPerImcuRow;
            rows[2] = row;
            rows[1] = blockRow > 0 || imcuRow > 0 ? row - 1 : row;
            rows[0] = blockRow > 1 || imcuRow > 1 ? row - 2 : rows[1];
            rows[3] = blockRow < blockRows - 1 || imcuRow < lastImcuRow ? row + 1 : row;
            rows[4] = blockRow < blockRows - 2 || imcuRow + 1 < lastImcuRow ? row + 2 : rows[3];

            // As libjpeg: every register starts with column 0; the first block loads column 1 into the fourth (if there
            // is one), each block loads column + 2 into the fifth while it exists, and the registers shift left after
            // each block, so the fifth keeps its last value at the right edge.
            for (int i = 0; i < 5; i++) dc.Slice(1 + 5 * i, 5).Fill(dcs[rows[i] * widthInBlocks]);
            for (int column = 0; column < widthInBlocks; column++)
            {
                if (column == 0 && column < widthInBlocks - 1)
                    for (int i = 0; i < 5; i++) dc[4 + 5 * i] = dcs[rows[i] * widthInBlocks + 1];
                if (column + 1 < widthInBlocks - 1)
                    for (int i = 0; i < 5; i++) dc[5 + 5 * i] = dcs[rows[i] * widthInBlocks + column + 2];
                var block = coefficients.Slice((row * blocksPerRow + column) * 64, 64);
                if (bits01 != 0 && block[Ac01] == 0)
                    block[Ac01] = Estimate(q00, changeDc
                        ? -dc[1] - dc[2] + dc[4] + dc[5] - 3 * dc[6] + 13 * dc[7] - 13 * dc[9] + 3 * dc[10] - 3 * dc[11] +
                          38 * dc[12] - 38 * dc[14] + 3 * dc[15] - 3 * dc[16] + 13 * dc[17] - 13 * dc[19] + 3 * dc[20] -
                          dc[21] - dc[22] + dc[24] + dc[25]
                        : -7 * dc[11] + 50 * dc[12] - 50 * dc[14] + 7 * dc[15], q01, bits01);
                if (bits10 != 0 && block[Ac10] == 0)
                    block[Ac10] = Estimate(q00, changeDc
                        ? -dc[1] - 3 * dc[2] - 3 * dc[3] - 3 * dc[4] - dc[5] - dc[6] + 13 * dc[7] + 38 * dc[8] + 13 * dc[9] -
                          dc[10] + dc[16] - 13 * dc[17] - 38 * dc[18] - 13 * dc[19] + dc[20] + dc[21] + 3 * dc[22] +
                          3 * dc[23] + 3 * dc[24] + dc[25]
                        : -7 * dc[3] + 50 * dc[8] - 50 * dc[18] + 7 * dc[23], q10, bits10);
                if (bits20 != 0 && block[Ac20] == 0)
                    block[Ac20] = Estimate(q00, changeDc
                        ? dc[3] + 2 * dc[7] + 7 * dc[8] + 2 * dc[9] - 5 * dc[12] - 14 * dc[13] - 5 * dc[14] + 2 * dc[17] +
                          7 * dc[18] + 2 * dc[19] + dc[23]
                        : -dc[3] + 13 * dc[8] - 24 * dc[13] + 13 * dc[18] - dc[23], q20, bits20);
                if (bits11 != 0 && block[Ac11] == 0)
                    block[Ac11] = Estimate(q00, changeDc
                        ? -dc[1] + dc[5] + 9 * dc[7] - 9 * dc[9] - 9 * dc[17] + 9 * dc[19] + dc[21] - dc[25]
                        : dc[10] + dc[16] - 10 * dc[17] + 10 * dc[19] - dc[2] - dc[20] + dc[22] - dc[24] + dc[4] - dc[6] +
                          10 * dc[7] - 10 * dc[9], q11, bits11);
                if (bits02 != 0 && block[Ac02] == 0)
                    block[Ac02] = Estimate(q00, changeDc
                        ? 2 * dc[7] - 5 * dc[8] + 2 * dc[9] + dc[11] + 7 * dc[12] - 14 * dc[13] + 7 * dc[14] + dc[15] +
                          2 * dc[17] - 5 * dc[18] + 2 * dc[19]
                        : -dc[11] + 13 * dc[12] - 24 * dc[13] + 13 * dc[14] - dc[15], q02, bits02);
                if (changeDc)
                {
                    // bitsNN are all -1 here: the estimates are not clamped.
                    if (block[Ac03] == 0)
                        block[Ac03] = Estimate(q00, dc[7] - dc[9] + 2 * dc[12] - 2 * dc[14] + dc[17] - dc[19], q03, bits03);
                    if (block[Ac12] == 0)
                        block[Ac12] = Estimate(q00, dc[7] - 3 * dc[8] + dc[9] - dc[17] + 3 * dc[18] - dc[19], q12, bits12);
                    if (block[Ac21] == 0)
                        block[Ac21] = Estimate(q00, dc[7] - dc[9] - 3 * dc[12] + 3 * dc[14] + dc[17] - dc[19], q21, bits21);
                    if (block[Ac30] == 0)
                        block[Ac30] = Estimate(q00, dc[7] + 2 * dc[8] + dc[9] - dc[17] - 2 * dc[18] - dc[19], q30, bits30);
                    block[0] = Estimate(q00,
                        -2 * dc[1] - 6 * dc[2] - 8 * dc[3] - 6 * dc[4] - 2 * dc[5] - 6 * dc[6] + 6 * dc[7] + 42 * dc[8] +
                        6 * dc[9] - 6 * dc[10] - 8 * dc[11] + 42 * dc[12] + 152 * dc[13] + 42 * dc[14] - 8 * dc[15] -
                        6 * dc[16] + 6 * dc[17] + 42 * dc[18] + 6 * dc[19] - 6 * dc[20] - 2 * dc[21] - 6 * dc[22] -
                        8 * dc[23] - 6 * dc[24] - 2 * dc[25], q00, bitsKnown: 0);
                }
                for (int i = 0; i < 5; i++) dc.Slice(2 + 5 * i, 4).CopyTo(dc.Slice(1 + 5 * i, 4)); // the fifth keeps its value
            }
        }
    }

    /// <summary>
    /// One estimate: num = Q00 * <paramref name="weightedDcs"/>, then round(|num| / (Q * 256)) with libjpeg's 64-bit
    /// arithmetic ((Q &lt;&lt; 7) + |num|) / (Q &lt;&lt; 8), clamped to 2^Al - 1 when the coefficient was sent with
    /// Al = <paramref name="bitsKnown"/> &gt; 0 (its true value is below 2^Al), and given num's sign; cast to a
    /// coefficient as libjpeg's (JCOEF) cast does.
    /// </summary>
    private static short Estimate(long q00, int weightedDcs, long q, int bitsKnown)
    {
        long num = q00 * weightedDcs;
        int prediction = (int)(((q << 7) + Math.Abs(num)) / (q << 8));
        if (bitsKnown > 0 && prediction >= 1 << bitsKnown) prediction = (1 << bitsKnown) - 1;
        return (short)(num >= 0 ? prediction : -prediction);
    }
}
