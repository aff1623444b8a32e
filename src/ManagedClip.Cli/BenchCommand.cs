using System.Diagnostics;
using System.Globalization;
using ManagedClip.Kernels;

namespace ManagedClip.Cli;

/// <summary>
/// managedclip bench: times one tower on synthetic inputs (seeded, so runs are comparable) after a warm-up, and reports
/// items/s, ms per item and achieved GFLOP/s (FLOPs as <c>ClipFlops</c> counts them; for text, of the positions actually run).
/// </summary>
internal sealed class BenchCommand : ICommand
{
    /// <summary>Default synthetic prompt length in tokens, start and end tokens included: "a photo of a dog." is 8, most prompts are under 15.</summary>
    const int DefaultPromptTokens = 10;

    public CommandSpec Spec { get; } = new("bench",
        "bench --model PATH --tower image|text [--batch N] [--iterations K] [--warmup W] [--threads T] [--device D] [--tokens L] [--full-context] [--json]",
        "Measure a tower's throughput on synthetic inputs: W warm-up calls, then K timed calls of N items each. " +
        "Prints items/s, ms per item and achieved GFLOP/s (median over the timed calls), and the process's peak memory. " +
        "Text prompts are L tokens long (start and end included); the text tower runs only up to the batch's last end-of-text " +
        "token unless --full-context, which runs all context positions as runtimes without that shortcut do. " +
        "With --json, one object per timed call, then a last line {tower, batch, threads, items_per_second, ms_per_item, gflops}.",
        ModelOptions.Names(ModelOptions.Model, ("--tower NAME", "image or text"), ("--batch N", "items per call (default 8)"),
            ("--iterations K", "timed calls (default 10)"), ("--warmup W", "untimed calls first (default 2)"), ModelOptions.Threads, ModelOptions.Device,
            ("--tokens L", $"synthetic prompt length in tokens, 2..context (default {DefaultPromptTokens})")),
        [("--full-context", "text: run all context positions (77), as runtimes without the end-of-text shortcut do")],
        ["managedclip bench --model ViT-B-32.safetensors --tower image --batch 8 --threads 2",
         "managedclip bench --model ViT-B-32.safetensors --tower text --full-context --json"]);

    public int Run(ParsedArguments args, Output output)
    {
        if (args.Inputs.Count > 0) throw new UsageException($"bench takes no inputs, got '{args.Inputs[0]}'");
        string tower = args.Required("--tower");
        if (tower is not ("image" or "text")) throw new UsageException($"--tower must be image or text, got '{tower}'");
        int batch = args.Int("--batch", 1, 4096) ?? 8;
        int iterations = args.Int("--iterations", 1, 1_000_000) ?? 10;
        int warmup = args.Int("--warmup", 0, 1_000_000) ?? 2;
        bool fullContext = args.Has("--full-context");
        if (fullContext && tower != "text") throw new UsageException("--full-context applies to --tower text only");
        int? tokensOption = args.Int("--tokens", 2, 4096);
        if (tokensOption is not null && tower != "text") throw new UsageException("--tokens applies to --tower text only");

        using var model = ModelOptions.Load(args);
        int threads = KernelContext.ResolveThreads(args.Int("--threads", 1, 1024) ?? 0);
        var config = model.Config;
        Action call;
        long flopsPerItem;
        int length = 0;
        if (tower == "image")
        {
            var pixels = SyntheticPixels(batch, model.ImageSize);
            call = () => model.EncodeImages(pixels, batch);
            flopsPerItem = ClipFlops.Image(config);
        }
        else
        {
            int context = config.Text.ContextLength, tokens = tokensOption ?? Math.Min(DefaultPromptTokens, context);
            if (tokens > context) throw new UsageException($"--tokens {tokens} exceeds the model's context of {context}");
            var ids = SyntheticPrompts(batch, tokens, context, config.Text.EndOfTextId);
            length = fullContext ? context : tokens;
            call = () => model.EncodeTokens(ids, fullContext);
            flopsPerItem = ClipFlops.Text(config, length);
        }

        for (int i = 0; i < warmup; i++) call();
        var seconds = new double[iterations];
        for (int i = 0; i < iterations; i++)
        {
            long start = Stopwatch.GetTimestamp();
            call();
            seconds[i] = Stopwatch.GetElapsedTime(start).TotalSeconds;
            if (output.Json)
            {
                double s = seconds[i];
                output.WriteJson(w =>
                {
                    w.WriteNumber("iteration", i);
                    w.WriteNumber("seconds", Math.Round(s, 6));
                    w.WriteNumber("items_per_second", Math.Round(batch / s, 3));
                });
            }
        }
        double median = Median(seconds);
        double itemsPerSecond = batch / median, msPerItem = 1000 * median / batch, gflops = flopsPerItem * (double)batch / median / 1e9;
        long peak = Process.GetCurrentProcess().PeakWorkingSet64;
        if (output.Json)
        {
            output.WriteJson(w =>
            {
                w.WriteString("tower", tower);
                w.WriteNumber("batch", batch);
                w.WriteNumber("threads", threads);
                w.WriteNumber("items_per_second", Math.Round(itemsPerSecond, 3));
                w.WriteNumber("ms_per_item", Math.Round(msPerItem, 3));
                w.WriteNumber("gflops", Math.Round(gflops, 2));
            });
            return 0;
        }
        var c = CultureInfo.InvariantCulture;
        output.WriteLine($"model          {model.SourcePath} ({config.Vision.Architecture}, {model.StorageDType})");
        output.WriteLine(tower == "image"
            ? $"tower          image, {model.ImageSize} px, batch {batch}, {Where(model, threads)}"
            : $"tower          text, {length} positions{(fullContext ? " (full context)" : "")}, batch {batch}, {Where(model, threads)}");
        output.WriteLine(string.Create(c, $"calls          {warmup} warm-up, {iterations} timed: median {1000 * median:0.00} ms, min {1000 * seconds.Min():0.00} ms, max {1000 * seconds.Max():0.00} ms"));
        output.WriteLine(string.Create(c, $"throughput     {itemsPerSecond:0.00} items/s, {msPerItem:0.00} ms/item, {gflops:0.0} GFLOP/s ({flopsPerItem / 1e9:0.000} GFLOP/item)"));
        output.WriteLine(string.Create(c, $"peak memory    {peak / 1048576.0:0} MiB resident (checkpoint {CheckpointBytes(model.SourcePath) / 1048576.0:0} MiB)"));
        return 0;
    }

    static double Median(double[] values)
    {
        var sorted = values.Order().ToArray();
        int n = sorted.Length;
        return n % 2 == 1 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
    }

    /// <summary>The device, or on the CPU its threads and SIMD path.</summary>
    static string Where(ClipModel model, int threads) =>
        model.Device == ClipDevice.Cpu ? $"{threads} threads, {Kernels.Simd.Describe(Kernels.Simd.Best)}" : $"on {model.Device}";

    static long CheckpointBytes(string path) =>
        File.Exists(path) ? new FileInfo(path).Length
        : Directory.Exists(path) ? new DirectoryInfo(path).EnumerateFiles("*.safetensors").Sum(f => f.Length) : 0;

    /// <summary>Seeded normal-ish pixels, the scale of normalized images.</summary>
    internal static float[] SyntheticPixels(int batch, int size)
    {
        var random = new Random(1234);
        var pixels = new float[(long)batch * 3 * size * size];
        for (long i = 0; i < pixels.LongLength; i++) pixels[i] = (float)(random.NextDouble() * 4 - 2);
        return pixels;
    }

    /// <summary>Prompts of <paramref name="tokens"/> ids: start token, seeded word ids below both special tokens, end token; zero padded to the context.</summary>
    internal static int[][] SyntheticPrompts(int batch, int tokens, int context, int endOfText)
    {
        var random = new Random(5678);
        var ids = new int[batch][];
        for (int b = 0; b < batch; b++)
        {
            var row = ids[b] = new int[context];
            row[0] = endOfText - 1;                                            // start of text (49406 in the released vocabulary)
            for (int i = 1; i < tokens - 1; i++) row[i] = random.Next(1, endOfText - 1);
            row[tokens - 1] = endOfText;
        }
        return ids;
    }
}
