namespace ManagedClip.Imaging.Jpeg;

/// <summary>
/// libjpeg-turbo 2.1.5's block smoothing of progressive images (jdcoefct.c decompress_smooth_data, on by default):
/// where a file's scans leave some of the first 9 AC coefficients missing or short of bits, each block's still-zero
/// low-frequency coefficients are estimated from the DC values of its 5x5 block neighbourhood, and when no AC data is
/// known at all the DC itself is re-estimated, before the IDCT. Applied in place to one component's quantized
/// coefficients (natural order, 64 per block); the estimates read only DC values, which are copied first, so the
/// result is the same as libjpeg's out-of-place workspace.
/// </summary>
internal static class JpegBlockSmoothing
{
    /// <param name="coefficients">the component's blocks</param>
    /// <param name="blocksPerRow">blocks to a row of <paramref name="coefficients"/> (the MCU grid's)</param>
    /// <param name="widthInBlocks">blocks that cover the component across (libjpeg's width_in_blocks)</param>
    /// <param name="heightInBlocks">blocks that cover it down (height_in_blocks)</param>
    /// <param name="rowsPerImcu">the component's vertical sampling factor: block rows per iMCU row</param>
    /// <param name="quant">the component's quantization table, natural order</param>
    /// <param name="bits">coef_bits latched for zigzag 0..9 (-1: no scan carried it, else its last Al)</param>
    /// <param name="previousBits">the same before the last scan that carried the component, used below
    /// <paramref name="lastGoodImcuRow"/> (rows whose last scan ran out of data)</param>
    /// <param name="lastGoodImcuRow">libjpeg's last_good_iMCU_row</param>
    public static void Apply(Span<short> coefficients, int blocksPerRow, int widthInBlocks, int heightInBlocks, int rowsPerImcu,
        ReadOnlySpan<ushort> quant, ReadOnlySpan<int> bits, ReadOnlySpan<int> previousBits, int lastGoodImcuRow)
    {
        var dc = new int[widthInBlocks * heightInBlocks];
        for (int r = 0; r < heightInBlocks; r++)
            for (int b = 0; b < widthInBlocks; b++)
                dc[r * widthInBlocks + b] = coefficients[(r * blocksPerRow + b) * 64];
        int lastImcuRow = (heightInBlocks - 1) / rowsPerImcu;
        var window = new int[25]; // DC01..DC25: 5 rows (row -2..+2) of 5 columns (column -2..+2)
        Span<int> rows = stackalloc int[5];
        for (int r = 0; r < heightInBlocks; r++)
        {
            int imcuRow = r / rowsPerImcu, blockRow = r % rowsPerImcu;
            int blockRows = imcuRow < lastImcuRow ? rowsPerImcu : heightInBlocks - lastImcuRow * rowsPerImcu;
            // The neighbouring rows as decompress_smooth_data picks them: the image's edge rows stand in for missing
            // ones, and two rows away is only used where its iMCU-row window reaches (not in iMCU rows 0 and 1, nor in
            // the last two, for rows it could otherwise see).
            rows[2] = r;
            rows[1] = r > 0 ? r - 1 : r;
            rows[0] = blockRow > 1 || imcuRow > 1 ? r - 2 : rows[1];
            rows[3] = blockRow < blockRows - 1 || imcuRow < lastImcuRow ? r + 1 : r;
            rows[4] = blockRow < blockRows - 2 || imcuRow + 1 < lastImcuRow ? r + 2 : rows[3];
            var coefBits = imcuRow > lastGoodImcuRow ? previousBits : bits;
            bool changeDc = true;
            for (int k = 1; k <= 9; k++) changeDc &= coefBits[k] == -1;

            for (int i = 0; i < 5; i++)
                for (int j = 0; j < 5; j++) window[5 * i + j] = dc[rows[i] * widthInBlocks];
            int lastColumn = widthInBlocks - 1;
            for (int b = 0; b < widthInBlocks; b++)
            {
                // The sliding registers: column b+1 is loaded once at the start, column b+2 while it is inside.
                if (b == 0 && b < lastColumn)
                    for (int i = 0; i < 5; i++) window[5 * i + 3] = dc[rows[i] * widthInBlocks + 1];
                if (b + 1 < lastColumn)
                    for (int i = 0; i < 5; i++) window[5 * i + 4] = dc[rows[i] * widthInBlocks + b + 2];
                var block = coefficients.Slice((r * blocksPerRow + b) * 64, 64);
                SmoothBlock(block, window, quant, coefBits, changeDc);
                for (int i = 0; i < 5; i++)
                    for (int j = 0; j < 4; j++) window[5 * i + j] = window[5 * i + j + 1];
            }
        }
    }

    /// <summary>The estimates of one block; <paramref name="w"/>[0..24] are DC01..DC25 of jdcoefct.c.</summary>
    private static void SmoothBlock(Span<short> block, int[] w, ReadOnlySpan<ushort> quant, ReadOnlySpan<int> coefBits, bool changeDc)
    {
        int D(int n) => w[n - 1];
        long q00 = quant[0];
        // Per coefficient: the weighted DC sum with DC interpolation (no AC data known) and without (K.8 on 5x5).
        Estimate(block, 1, coefBits[1], q00, quant, changeDc
            ? -D(1) - D(2) + D(4) + D(5) - 3 * D(6) + 13 * D(7) - 13 * D(9) + 3 * D(10) - 3 * D(11) + 38 * D(12) - 38 * D(14)
              + 3 * D(15) - 3 * D(16) + 13 * D(17) - 13 * D(19) + 3 * D(20) - D(21) - D(22) + D(24) + D(25)
            : -7 * D(11) + 50 * D(12) - 50 * D(14) + 7 * D(15));
        Estimate(block, 8, coefBits[2], q00, quant, changeDc
            ? -D(1) - 3 * D(2) - 3 * D(3) - 3 * D(4) - D(5) - D(6) + 13 * D(7) + 38 * D(8) + 13 * D(9) - D(10) + D(16)
              - 13 * D(17) - 38 * D(18) - 13 * D(19) + D(20) + D(21) + 3 * D(22) + 3 * D(23) + 3 * D(24) + D(25)
            : -7 * D(3) + 50 * D(8) - 50 * D(18) + 7 * D(23));
        Estimate(block, 16, coefBits[3], q00, quant, changeDc
            ? D(3) + 2 * D(7) + 7 * D(8) + 2 * D(9) - 5 * D(12) - 14 * D(13) - 5 * D(14) + 2 * D(17) + 7 * D(18) + 2 * D(19) + D(23)
            : -D(3) + 13 * D(8) - 24 * D(13) + 13 * D(18) - D(23));
        Estimate(block, 9, coefBits[4], q00, quant, changeDc
            ? -D(1) + D(5) + 9 * D(7) - 9 * D(9) - 9 * D(17) + 9 * D(19) + D(21) - D(25)
            : D(10) + D(16) - 10 * D(17) + 10 * D(19) - D(2) - D(20) + D(22) - D(24) + D(4) - D(6) + 10 * D(7) - 10 * D(9));
        Estimate(block, 2, coefBits[5], q00, quant, changeDc
            ? 2 * D(7) - 5 * D(8) + 2 * D(9) + D(11) + 7 * D(12) - 14 * D(13) + 7 * D(14) + D(15) + 2 * D(17) - 5 * D(18) + 2 * D(19)
            : -D(11) + 13 * D(12) - 24 * D(13) + 13 * D(14) - D(15));
        if (!changeDc) return;
        Estimate(block, 3, coefBits[6], q00, quant, D(7) - D(9) + 2 * D(12) - 2 * D(14) + D(17) - D(19));
        Estimate(block, 10, coefBits[7], q00, quant, D(7) - 3 * D(8) + D(9) - D(17) + 3 * D(18) - D(19));
        Estimate(block, 17, coefBits[8], q00, quant, D(7) - D(9) - 3 * D(12) + 3 * D(14) + D(17) - D(19));
        Estimate(block, 24, coefBits[9], q00, quant, D(7) + 2 * D(8) + D(9) - D(17) - 2 * D(18) - D(19));
        long dcSum = -2 * D(1) - 6 * D(2) - 8 * D(3) - 6 * D(4) - 2 * D(5) - 6 * D(6) + 6 * D(7) + 42 * D(8) + 6 * D(9) - 6 * D(10)
            - 8 * D(11) + 42 * D(12) + 152 * D(13) + 42 * D(14) - 8 * D(15) - 6 * D(16) + 6 * D(17) + 42 * D(18) + 6 * D(19)
            - 6 * D(20) - 2 * D(21) - 6 * D(22) - 8 * D(23) - 6 * D(24) - 2 * D(25);
        block[0] = (short)Predict(q00 * dcSum, q00, 0);
    }

    /// <summary>Sets the coefficient at <paramref name="position"/> to its estimate when it is still zero and not known
    /// to be exact (its Al is not 0).</summary>
    private static void Estimate(Span<short> block, int position, int al, long q00, ReadOnlySpan<ushort> quant, long dcSum)
    {
        if (al == 0 || block[position] != 0) return;
        block[position] = (short)Predict(q00 * dcSum, quant[position], al);
    }

    /// <summary>num / (q * 256) rounded half away from zero; with Al &gt; 0 its magnitude stays below 2^Al (the bits a
    /// later refinement would have set).</summary>
    private static int Predict(long num, long q, int al)
    {
        int pred = (int)(((q << 7) + Math.Abs(num)) / (q << 8));
        if (al > 0 && pred >= 1 << al) pred = (1 << al) - 1;
        return num >= 0 ? pred : -pred;
    }
}
