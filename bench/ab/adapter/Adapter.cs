using System.Diagnostics;
using ManagedClip;
using ManagedClip.Kernels;

/// <summary>
/// The few calls the A/B host times, compiled against one build of the library. Only public API, so one adapter source
/// builds against any version that has it. Plain types in and out: the host calls these by reflection across load contexts.
/// </summary>
public static class Adapter
{
    static float[] _x = [], _y = [], _bias = [];
    static PackedMatrix? _b;
    static int _m;

    public static void GemmSetup(int m, int k, int n)
    {
        var random = new Random(42);
        _x = new float[m * k]; _y = new float[m * n]; _bias = new float[n];
        var w = new float[k * n];
        for (int i = 0; i < _x.Length; i++) _x[i] = (float)random.NextDouble() - 0.5f;
        for (int i = 0; i < w.Length; i++) w[i] = (float)random.NextDouble() - 0.5f;
        _b = PackedMatrix.FromRowMajor(w, k, n);
        _m = m;
    }

    /// <summary>Seconds per call, for <paramref name="reps"/> calls of y = x·B + bias.</summary>
    public static double[] Gemm(int threads, int reps)
    {
        var seconds = new double[reps];
        for (int r = 0; r < reps; r++)
        {
            long t0 = Stopwatch.GetTimestamp();
            ManagedClip.Kernels.Gemm.Multiply(new ReadOnlyMatrixView(_x, _m, _b!.K), _b, new MatrixView(_y, _m, _b.N), Epilogue.Of(_bias),
                KernelContext.Create(threads));
            seconds[r] = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        }
        return seconds;
    }

    public static double Checksum() => _y.Sum(v => (double)v);

    static ClipModel? _model;
    static float[] _pixels = [];
    static int[][] _ids = [];
    static int _batch;

    public static void ModelSetup(string path, int threads, int batch)
    {
        _model = ClipModel.Load(path, new ClipModelOptions { MaxThreads = threads });
        _batch = batch;
        var random = new Random(7);
        _pixels = new float[batch * 3 * _model.ImageSize * _model.ImageSize];
        for (int i = 0; i < _pixels.Length; i++) _pixels[i] = (float)random.NextDouble() * 2 - 1;
        // Full 77-token prompts (start, 75 ordinary tokens, end), so the text tower runs every position either way.
        _ids = new int[batch][];
        for (int b = 0; b < batch; b++)
        {
            _ids[b] = new int[77];
            _ids[b][0] = 49406;
            for (int j = 1; j < 76; j++) _ids[b][j] = 300 + (b * 77 + j) % 40000;
            _ids[b][76] = 49407;
        }
    }

    /// <summary>Seconds per call, for <paramref name="reps"/> calls encoding one batch with the image or text tower.</summary>
    public static double[] Model(string tower, int reps)
    {
        var seconds = new double[reps];
        for (int r = 0; r < reps; r++)
        {
            long t0 = Stopwatch.GetTimestamp();
            if (tower == "image") _model!.EncodeImages(_pixels, _batch); else _model!.EncodeTokens(_ids, fullContext: true);
            seconds[r] = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        }
        return seconds;
    }

    /// <summary>Seconds per <see cref="ClipModel.Load"/> of <paramref name="path"/>, for <paramref name="reps"/> loads; each model is disposed and collected before the next.</summary>
    public static double[] Load(string path, int reps)
    {
        var seconds = new double[reps];
        for (int r = 0; r < reps; r++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            long t0 = Stopwatch.GetTimestamp();
            using var model = ClipModel.Load(path);
            seconds[r] = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        }
        return seconds;
    }

    public static float[] ModelOutput(string tower) =>
        tower == "image" ? _model!.EncodeImages(_pixels, _batch)[0] : _model!.EncodeTokens(_ids, fullContext: true)[0];
}
