namespace ManagedClip.Kernels.Tests;

public class AttentionTests
{
    static ReadOnlyMatrixView In(ReadOnlySpan<float> data, int rows, int columns, int stride) => new(data, rows, columns, stride);
    static MatrixView Out(Span<float> data, int rows, int columns, int stride) => new(data, rows, columns, stride);

    /// <summary>Separate q, k, v buffers with row strides equal to heads·headDim (plus optional padding).</summary>
    sealed record Problem(float[] Q, int QStride, float[] K, float[] V, int KvStride, int Batch, int Lq, int Lk, int Heads, int HeadDim, bool Causal)
    {
        public int OutStride => Heads * HeadDim;
        public float[] NewOutput() => new float[Batch * Lq * OutStride];

        public static Problem Random(int batch, int lq, int lk, int heads, int headDim, bool causal, int seed, int pad = 0)
        {
            int qs = heads * headDim + pad, kvs = heads * headDim + pad;
            return new Problem(TestData.Random(batch * lq * qs, seed, 2f), qs, TestData.Random(batch * lk * kvs, seed + 1, 2f),
                TestData.Random(batch * lk * kvs, seed + 2), kvs, batch, lq, lk, heads, headDim, causal);
        }

        public float[] Run(SimdLevel level, int threads = 0)
        {
            var o = NewOutput();
            int w = Heads * HeadDim;
            Attention.Forward(In(Q, Batch * Lq, w, QStride), In(K, Batch * Lk, w, KvStride), In(V, Batch * Lk, w, KvStride), Out(o, Batch * Lq, w, OutStride),
                new AttentionShape(Batch, Lq, Lk, Heads, Causal), TestData.At(level, threads));
            return o;
        }

        /// <summary>
        /// Budget for one output element: scores carry ≈ headDim·u·Σ|q||k|/√d absolute error (float dot products),
        /// which e^s turns into that much relative error in each weight; the softmax sum and the weighted sum of v add
        /// ≈ Lk·u. All relative to max|v| (the output is a convex combination of v rows).
        /// </summary>
        public double Tolerance()
        {
            double maxQ = Q.Max(Math.Abs), maxK = K.Max(Math.Abs), maxV = V.Max(Math.Abs);
            double scoreError = HeadDim * TestData.U * HeadDim * maxQ * maxK / Math.Sqrt(HeadDim);
            return (2 * scoreError + (2 * Lk + HeadDim + 16) * TestData.U) * maxV;
        }
    }

    public static TheoryData<int, int, int, int, int, bool> Shapes() => new()
    {
        // batch, queryLength, keyLength, heads, headDim, causal
        { 1, 50, 50, 12, 64, false },   // ViT-B/32 at 224: 50 tokens, 12 heads
        { 2, 77, 77, 8, 64, true },     // text tower, batch 2, causal
        { 2, 1, 50, 8, 32, false },     // AttentionPool2d shape: one query (the mean token) over 50 keys
        { 1, 7, 7, 3, 13, true },       // headDim not a multiple of any vector width
        { 1, 5, 600, 2, 16, false },    // keys span three score tiles (online softmax rescaling)
        { 1, 300, 300, 1, 8, true },    // causal across tiles
        { 3, 17, 9, 1, 1, false },      // headDim 1
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Vector_paths_match_scalar_twin(int batch, int lq, int lk, int heads, int headDim, bool causal)
    {
        var p = Problem.Random(batch, lq, lk, heads, headDim, causal, seed: lq + 3 * lk + headDim, pad: 3);
        var expected = p.Run(SimdLevel.Scalar);
        double tol = p.Tolerance();
        foreach (var level in TestData.VectorLevels)
            TestData.Close(expected, p.Run(level), _ => tol, $"{level} b={batch} lq={lq} lk={lk} h={heads} d={headDim} causal={causal}");
    }

    [Fact]
    public void Scalar_twin_matches_double_precision()
    {
        var p = Problem.Random(2, 9, 9, 3, 5, causal: true, seed: 77);
        var actual = p.Run(SimdLevel.Scalar);
        var exact = new float[actual.Length];
        double scale = 1 / Math.Sqrt(p.HeadDim);
        for (int b = 0; b < p.Batch; b++)
            for (int h = 0; h < p.Heads; h++)
                for (int i = 0; i < p.Lq; i++)
                {
                    var s = new double[p.Lk];
                    for (int j = 0; j < p.Lk; j++)
                    {
                        double dot = 0;
                        for (int d = 0; d < p.HeadDim; d++)
                            dot += (double)p.Q[(b * p.Lq + i) * p.QStride + h * p.HeadDim + d] * p.K[(b * p.Lk + j) * p.KvStride + h * p.HeadDim + d];
                        s[j] = j > i ? double.NegativeInfinity : dot * scale;
                    }
                    double max = s.Max(), sum = s.Sum(v => Math.Exp(v - max));
                    for (int d = 0; d < p.HeadDim; d++)
                    {
                        double o = 0;
                        for (int j = 0; j < p.Lk; j++) o += Math.Exp(s[j] - max) / sum * p.V[(b * p.Lk + j) * p.KvStride + h * p.HeadDim + d];
                        exact[(b * p.Lq + i) * p.OutStride + h * p.HeadDim + d] = (float)o;
                    }
                }
        double tol = p.Tolerance() / 2;
        TestData.Close(exact, actual, _ => tol, "scalar twin vs double");
    }

    [Fact]
    public void Causal_mask_hides_future_keys_and_values()
    {
        foreach (var level in Simd.Supported)
        {
            var p = Problem.Random(1, 20, 20, 2, 16, causal: true, seed: 5);
            var before = p.Run(level);
            // Scramble keys/values of positions ≥ 10: outputs of queries < 10 must not change at all.
            for (int j = 10; j < 20; j++)
                for (int c = 0; c < p.KvStride; c++) { p.K[j * p.KvStride + c] = 50f; p.V[j * p.KvStride + c] = -7f; }
            var after = p.Run(level);
            Assert.Equal(before.AsSpan(0, 10 * p.OutStride).ToArray(), after.AsSpan(0, 10 * p.OutStride).ToArray());
            Assert.NotEqual(before.AsSpan(10 * p.OutStride).ToArray(), after.AsSpan(10 * p.OutStride).ToArray());
            // Query 0 sees only key 0: its output is exactly v_0.
            Assert.Equal(p.V.AsSpan(0, p.OutStride).ToArray(), after.AsSpan(0, p.OutStride).ToArray());
        }
    }

    [Fact]
    public void Fused_qkv_overlapping_slices_match_separate_buffers()
    {
        int batch = 2, len = 50, heads = 4, headDim = 16, d = heads * headDim;
        var qkv = TestData.Random(batch * len * 3 * d, 9, 2f);   // [tokens, 3d]: q | k | v per row
        var q = new float[batch * len * d];
        var k = new float[batch * len * d];
        var v = new float[batch * len * d];
        for (int t = 0; t < batch * len; t++)
        {
            qkv.AsSpan(t * 3 * d, d).CopyTo(q.AsSpan(t * d));
            qkv.AsSpan(t * 3 * d + d, d).CopyTo(k.AsSpan(t * d));
            qkv.AsSpan(t * 3 * d + 2 * d, d).CopyTo(v.AsSpan(t * d));
        }
        foreach (var level in Simd.Supported)
            foreach (bool causal in new[] { false, true })
            {
                var separate = new float[batch * len * d];
                var shape = new AttentionShape(batch, len, len, heads, causal);
                int t = batch * len;
                Attention.Forward(In(q, t, d, d), In(k, t, d, d), In(v, t, d, d), Out(separate, t, d, d), shape, TestData.At(level));
                var fused = new float[batch * len * d];
                var all = qkv.AsSpan();
                Attention.Forward(In(all, t, d, 3 * d), In(all[d..], t, d, 3 * d), In(all[(2 * d)..], t, d, 3 * d), Out(fused, t, d, d), shape, TestData.At(level));
                Assert.Equal(separate, fused);
            }
    }

    /// <summary>Causal rows depend on their own prefix only, bit for bit: the text tower's end-of-text shortcut runs shorter sequences and must get identical rows.</summary>
    [Theory]
    [InlineData(77, 9, 64)]
    [InlineData(300, 37, 8)]
    [InlineData(40, 17, 13)]
    public void Causal_rows_do_not_depend_on_the_sequence_length(int full, int prefix, int headDim)
    {
        var p = Problem.Random(1, full, full, 2, headDim, causal: true, seed: full + prefix);
        int width = 2 * headDim;
        var shorter = p with { Lq = prefix, Lk = prefix };
        foreach (var level in Simd.Supported)
        {
            var all = p.Run(level);
            var some = shorter.Run(level);
            Assert.Equal(all.AsSpan(0, prefix * width).ToArray(), some.AsSpan(0, prefix * width).ToArray());
        }
    }

    [Fact]
    public void One_and_two_threads_give_identical_results()
    {
        var p = Problem.Random(2, 77, 77, 8, 64, causal: true, seed: 3);
        foreach (var level in Simd.Supported)
            Assert.Equal(p.Run(level, threads: 1), p.Run(level, threads: 2));
    }

    [Fact]
    public void Output_with_wider_stride_leaves_the_gaps_alone()
    {
        int heads = 2, headDim = 8, len = 5, stride = heads * headDim + 4;
        var p = Problem.Random(1, len, len, heads, headDim, causal: false, seed: 8);
        foreach (var level in Simd.Supported)
        {
            var o = Enumerable.Repeat(42f, len * stride).ToArray();
            int w = heads * headDim;
            Attention.Forward(In(p.Q, len, w, p.QStride), In(p.K, len, w, p.KvStride), In(p.V, len, w, p.KvStride), Out(o, len, w, stride),
                new AttentionShape(1, len, len, heads), TestData.At(level));
            for (int i = 0; i < len; i++)
                Assert.All(o.AsSpan(i * stride + heads * headDim, 4).ToArray(), x => Assert.Equal(42f, x));
        }
    }

    [Fact]
    public void Invalid_arguments_throw()
    {
        int h = 2, d = 4, w = h * d;
        var q = new float[3 * w];
        var o = new float[3 * w];
        var three = new AttentionShape(1, 3, 3, h);
        Assert.Throws<ArgumentException>(() => Attention.Forward(In(q, 3, w, w), In(q, 2, w, w), In(q, 2, w, w), Out(o, 3, w, w), new AttentionShape(1, 3, 2, h, Causal: true))); // causal needs Lq == Lk
        Assert.Throws<ArgumentOutOfRangeException>(() => In(q, 3, w, w - 1));                                                          // stride < heads·headDim
        Assert.Throws<ArgumentException>(() => Attention.Forward(In(q, 3, w - 1, w), In(q, 3, w, w), In(q, 3, w, w), Out(o, 3, w, w), three)); // q's width ≠ k's
        Assert.Throws<ArgumentException>(() => Attention.Forward(In(q, 3, w, w), In(q, 3, w, w), In(q, 3, w, w), Out(o, 3, w, w), new AttentionShape(1, 3, 3, 3))); // 3 heads do not divide 8
        Assert.Throws<ArgumentException>(() => In(new float[3 * w - 1], 3, w, w));                                                     // q too short
        Assert.Throws<ArgumentException>(() => Attention.Forward(In(q, 3, w, w), In(q, 2, w, w), In(q, 3, w, w), Out(o, 3, w, w), three)); // k has too few rows
        Assert.Throws<ArgumentException>(() => Attention.Forward(In(q, 3, w, w), In(q, 3, w, w), In(q, 2, w, w), Out(o, 3, w, w), three)); // v has too few rows
        Assert.Throws<ArgumentException>(() => Attention.Forward(In(q, 3, w, w), In(q, 3, w, w), In(q, 3, w, w), Out(o, 2, w, w), three)); // output has too few rows
        Assert.Throws<ArgumentException>(() => Attention.Forward(In(q, 3, w, w), In(q, 3, w, w), In(q, 3, w, w), Out(q, 3, w, w), three)); // output aliases q
        Assert.Throws<ArgumentOutOfRangeException>(() => Attention.Forward(In(q, 3, w, w), In(q, 0, w, w), In(q, 0, w, w), Out(o, 3, w, w), new AttentionShape(1, 3, 0, h)));
        Assert.Throws<ArgumentOutOfRangeException>(() => Attention.Forward(In(q, 3, w, w), In(q, 3, w, w), In(q, 3, w, w), Out(o, 3, w, w), new AttentionShape(1, 3, 3, 0)));
        Assert.Throws<ArgumentOutOfRangeException>(() => Attention.Forward(In(q, 3, w, w), In(q, 3, w, w), In(q, 3, w, w), Out(o, 3, w, w), new AttentionShape(-1, 3, 3, h)));
    }
}
