using System.Runtime.Intrinsics;

namespace ManagedClip.Kernels.Tests;

/// <summary>
/// The kernel harness: one place that resolves threads and checks levels, one parallel loop, one tail convention (a vector
/// formula run one lane at a time), and views with row strides.
/// </summary>
public class KernelContextTests
{
    [Fact]
    public void Create_resolves_threads_and_refuses_levels_the_machine_cannot_run()
    {
        Assert.Equal(Environment.ProcessorCount, KernelContext.Create().Threads);
        Assert.Equal(3, KernelContext.Create(3).Threads);
        Assert.Equal(Simd.Best, KernelContext.Default.Level);
        Assert.Equal(SimdLevel.Scalar, KernelContext.Create(1, SimdLevel.Scalar).Level);
        Assert.Throws<ArgumentOutOfRangeException>(() => KernelContext.Create(-1));
        foreach (var level in Enum.GetValues<SimdLevel>().Where(l => l != SimdLevel.Scalar && !Simd.Supported.Contains(l)))
            Assert.Contains("not supported", Assert.Throws<ArgumentException>(() => KernelContext.Create(1, level)).Message);
    }

    [Fact]
    public void A_team_member_asked_for_one_thread_stays_in_its_team()
    {
        var team = new WorkSharing(2);
        var member = KernelContext.Create(2, SimdLevel.Scalar).AsMember(team, 1);
        Assert.Equal(1, member.Threads);
        Assert.Equal(SimdLevel.Scalar, member.Level);
        Assert.Same(member, member.WithThreads(1));
        Assert.Null(member.WithThreads(2).Team);
        Assert.Same(team, member.Team);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 1000)]
    [InlineData(3, 7)]
    [InlineData(4, 100_000)]
    public void For_runs_every_item_exactly_once(int threads, int count)
    {
        var runs = new int[count];
        var workers = new HashSet<int>();
        KernelContext.Create(threads).ForWorkers(count, KernelContext.MinimumWorkPerThread, (ranges, worker) =>
        {
            lock (workers) workers.Add(worker);
            while (ranges.TryTake(out int first, out int end))
                for (int i = first; i < end; i++) Interlocked.Increment(ref runs[i]);
        });
        Assert.All(runs, r => Assert.Equal(1, r));
        Assert.All(workers, w => Assert.InRange(w, 0, Math.Min(threads, count) - 1));
        KernelContext.Create(threads).For(0, 1, (_, _) => Assert.Fail("no items, no calls"));
    }

    [Fact]
    public void Little_work_stays_on_the_calling_thread()
    {
        int caller = Environment.CurrentManagedThreadId, calls = 0;
        KernelContext.Create(4).For(100, 1, (first, end) =>
        {
            Assert.Equal(caller, Environment.CurrentManagedThreadId);
            calls++;
        });
        Assert.True(calls >= 1);
    }

    /// <summary>The tail convention rests on this: <see cref="OpsScalar"/> computes each lane exactly as the vector types do.</summary>
    [Fact]
    public void Scalar_lane_formulas_give_the_vector_lanes_bits()
    {
        var x = TestData.Random(4096, 5, scale: 30f);
        for (int i = 0; i + 4 <= x.Length; i += 4)
        {
            var v = Vector128.Create(x[i], x[i + 1], x[i + 2], x[i + 3]);
            var e = Ops128.Exp(v);
            var g = Activations.QuickGeluOp.Invoke<Vector128<float>, Ops128>(v);
            var n = Activations.GeluOp.Invoke<Vector128<float>, Ops128>(v);
            for (int lane = 0; lane < 4; lane++)
            {
                Assert.Equal(BitConverter.SingleToInt32Bits(e.GetElement(lane)), BitConverter.SingleToInt32Bits(OpsScalar.Exp(x[i + lane])));
                Assert.Equal(BitConverter.SingleToInt32Bits(g.GetElement(lane)), BitConverter.SingleToInt32Bits(Activations.QuickGeluOp.Invoke<float, OpsScalar>(x[i + lane])));
                Assert.Equal(BitConverter.SingleToInt32Bits(n.GetElement(lane)), BitConverter.SingleToInt32Bits(Activations.GeluOp.Invoke<float, OpsScalar>(x[i + lane])));
            }
        }
    }

    /// <summary>x and y read and written through row strides (a column block of wider rows) give the contiguous product's bits.</summary>
    [Fact]
    public void Gemm_with_row_strides_equals_the_contiguous_product()
    {
        int m = 50, k = 70, n = 33, xStride = 3 * k, yStride = n + 5;
        var wide = TestData.Random(m * xStride, 1);
        var x = new float[m * k];
        for (int i = 0; i < m; i++) wide.AsSpan(i * xStride + k, k).CopyTo(x.AsSpan(i * k));   // the middle column block
        var b = PackedMatrix.FromRowMajor(TestData.Random(k * n, 2), k, n);
        var bias = TestData.Random(n, 3);
        var residual = TestData.Random(m * n, 4);
        foreach (var level in Simd.Supported)
        {
            var context = TestData.At(level);
            var expected = (float[])residual.Clone();
            Gemm.Multiply(new ReadOnlyMatrixView(x, m, k), b, new MatrixView(expected, m, n), new Epilogue(bias, Activation.Gelu, expected), context);
            var y = Enumerable.Repeat(7f, (m - 1) * yStride + n).ToArray();
            for (int i = 0; i < m; i++) residual.AsSpan(i * n, n).CopyTo(y.AsSpan(i * yStride));
            Gemm.Multiply(new ReadOnlyMatrixView(wide.AsSpan(k), m, k, xStride), b, new MatrixView(y, m, n, yStride), new Epilogue(bias, Activation.Gelu, y), context);
            for (int i = 0; i < m; i++)
            {
                Assert.Equal(expected.AsSpan(i * n, n).ToArray(), y.AsSpan(i * yStride, n).ToArray());
                if (i + 1 < m) Assert.All(y.AsSpan(i * yStride + n, yStride - n).ToArray(), v => Assert.Equal(7f, v));   // the gaps are left alone
            }
        }
    }

    [Fact]
    public void Layer_norm_with_row_strides_equals_the_contiguous_rows()
    {
        int rows = 9, width = 37, stride = 50;
        var wide = TestData.Random(rows * stride, 6, offset: 2f);
        var x = new float[rows * width];
        for (int r = 0; r < rows; r++) wide.AsSpan(r * stride, width).CopyTo(x.AsSpan(r * width));
        var gamma = TestData.Random(width, 7, offset: 1f);
        var beta = TestData.Random(width, 8);
        foreach (var level in Simd.Supported)
        {
            var expected = new float[rows * width];
            LayerNorm.Forward(new ReadOnlyMatrixView(x, rows, width), new MatrixView(expected, rows, width), gamma, beta, context: TestData.At(level));
            var inPlace = (float[])wide.Clone();
            LayerNorm.Forward(new ReadOnlyMatrixView(inPlace, rows, width, stride), new MatrixView(inPlace, rows, width, stride), gamma, beta, context: TestData.At(level));
            for (int r = 0; r < rows; r++)
            {
                Assert.Equal(expected.AsSpan(r * width, width).ToArray(), inPlace.AsSpan(r * stride, width).ToArray());
                Assert.Equal(wide.AsSpan(r * stride + width, stride - width).ToArray(), inPlace.AsSpan(r * stride + width, stride - width).ToArray());
            }
        }
    }
}
