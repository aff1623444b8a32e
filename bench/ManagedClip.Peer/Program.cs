using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using ManagedClip;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

// The peer comparison of issue 8, in one go on the same seeded weights:
//   ManagedClip.Peer run DIR [--rounds R] [--seconds S] [--out BENCHMARKS.md] [--no-pytorch] [--models vit-b32,rn50]
//     ManagedClip and ONNX Runtime (C#, 2 intra-op threads) in this process, PyTorch (bench/peer/export_onnx.py time) as a
//     child process, interleaved round by round; medians of per-call times over all rounds; peak memory from fresh processes.
//   ManagedClip.Peer memory managedclip|ort DIR MODEL    (child mode) load, encode 8 images three times, print peak RSS.
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
if (args.Length >= 4 && args[0] == "memory") return Peer.Memory(args[1], args[2], args[3]);
if (args.Length >= 2 && args[0] == "run") return Peer.Run(args[1], args[2..]);
if (args.Length >= 2 && args[0] == "check") return Peer.Check(args[1]) ? 0 : 1;
if (args.Length >= 3 && args[0] == "cpu") { Peer.Cpu(args[1], args[2]); return 0; }
Console.Error.WriteLine("usage: ManagedClip.Peer run DIR [--rounds R] [--seconds S] [--out FILE] [--no-pytorch] [--models vit-b32,rn50] | memory managedclip|ort DIR MODEL");
return 2;

static class Peer
{
    const int Threads = 2;
    const int PromptTokens = 10;   // "a photo of a {label}." and most prompts: under 15 tokens
    static readonly string[] Models = ["vit-b32", "rn50"];

    sealed record Case(string Model, string Runtime, string Tower, int Batch, string Note, long FlopsPerItem, Action Call)
    {
        public List<double> Seconds { get; } = [];
        public double Wall { get; set; }
        public double Cpu { get; set; }
        public double CoresBusy => Wall > 0 ? Cpu / Wall : 0;
        public string Key => $"{Model}|{Tower}|{Batch}|{Note}";
    }

    public static int Run(string dir, string[] options)
    {
        int rounds = Option(options, "--rounds", 3);
        double seconds = Option(options, "--seconds", 3);
        string output = OptionText(options, "--out") ?? "BENCHMARKS.md";
        bool pytorch = !options.Contains("--no-pytorch");
        string[] models = OptionText(options, "--models")?.Split(',') ?? Models;   // a quick partial run; BENCHMARKS.md has both
        string loadBefore = LoadAverage();
        var cases = new List<Case>();
        var disposables = new List<IDisposable>();
        foreach (string name in models)
        {
            var model = ClipModel.Load(Path.Combine(dir, name + ".safetensors"), new ClipModelOptions { MaxThreads = Threads });
            disposables.Add(model);
            var config = model.Config;
            int size = model.ImageSize, context = config.Text.ContextLength;
            var sessionOptions = new SessionOptions { IntraOpNumThreads = Threads, InterOpNumThreads = 1, ExecutionMode = ExecutionMode.ORT_SEQUENTIAL, GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
            var image = new InferenceSession(Path.Combine(dir, $"{name}.image.onnx"), sessionOptions);
            disposables.Add(image);
            InferenceSession? text = null;
            if (name == "vit-b32") { text = new InferenceSession(Path.Combine(dir, $"{name}.text.onnx"), sessionOptions); disposables.Add(text); }
            foreach (int batch in new[] { 8, 1 })
            {
                var pixels = Pixels(batch, size);
                var pixelTensor = new DenseTensor<float>(pixels, [batch, 3, size, size]);
                long imageFlops = ClipFlops.Image(config);
                cases.Add(new(name, "managedclip", "image", batch, "", imageFlops, () => model.EncodeImages(pixels, batch)));
                cases.Add(new(name, "onnxruntime", "image", batch, "", imageFlops, () => Infer(image, "pixels", pixelTensor)));
                if (text is null) continue;
                var full = Prompts(batch, context, context);
                var typical = Prompts(batch, PromptTokens, context);
                var idTensor = new DenseTensor<long>(full.SelectMany(r => r.Select(i => (long)i)).ToArray(), [batch, context]);
                long fullFlops = ClipFlops.Text(config, context);
                cases.Add(new(name, "managedclip", "text", batch, "77 tokens", fullFlops, () => model.EncodeTokens(full, fullContext: true)));
                cases.Add(new(name, "onnxruntime", "text", batch, "77 tokens", fullFlops, () => Infer(text, "ids", idTensor)));
                cases.Add(new(name, "managedclip", "text", batch, $"{PromptTokens}-token prompts, EOT shortcut", ClipFlops.Text(config, PromptTokens), () => model.EncodeTokens(typical)));
            }
        }
        Console.WriteLine($"{cases.Count} cases, {rounds} rounds of {seconds} s each, load {loadBefore}");
        foreach (var c in cases) { c.Call(); c.Call(); }   // warm-up (JIT, ORT arenas)

        var torchSamples = new Dictionary<string, List<double>>();
        JsonElement? torchInfo = null;
        for (int round = 0; round < rounds; round++)
        {
            foreach (var c in cases)
            {
                var process = Process.GetCurrentProcess();
                var cpu0 = process.TotalProcessorTime;
                var watch = Stopwatch.StartNew();
                do
                {
                    long t0 = Stopwatch.GetTimestamp();
                    c.Call();
                    c.Seconds.Add(Stopwatch.GetElapsedTime(t0).TotalSeconds);
                } while (watch.Elapsed.TotalSeconds < seconds);
                process.Refresh();
                c.Wall += watch.Elapsed.TotalSeconds;
                c.Cpu += (process.TotalProcessorTime - cpu0).TotalSeconds;
            }
            Console.WriteLine($"round {round + 1}: load {LoadAverage()}");
            if (pytorch) torchInfo = PyTorchRound(dir, torchSamples);
        }
        string loadAfter = LoadAverage();
        foreach (var d in disposables) d.Dispose();

        var checks = new List<string>();
        Check(dir, checks.Add, models);
        var memory = new List<(string Runtime, long Peak, long Checkpoint)>();
        foreach (string runtime in new[] { "managedclip", "onnxruntime" })
        {
            var (peak, checkpoint) = MemoryChild(runtime, dir, "vit-b32");
            memory.Add((runtime, peak, checkpoint));
        }
        string report = Report(cases, torchSamples, torchInfo, memory, loadBefore, loadAfter, rounds, seconds, checks);
        File.WriteAllText(output, report);
        Console.WriteLine(report);
        return 0;
    }

    /// <summary>Wall and process CPU time of ManagedClip and ONNX Runtime on one image tower, batch 8, alternating 4 s windows.</summary>
    public static void Cpu(string dir, string name)
    {
        using var model = ClipModel.Load(Path.Combine(dir, name + ".safetensors"), new ClipModelOptions { MaxThreads = Threads });
        using var image = new InferenceSession(Path.Combine(dir, $"{name}.image.onnx"), new SessionOptions { IntraOpNumThreads = Threads });
        var pixels = Pixels(8, model.ImageSize);
        var tensor = new DenseTensor<float>(pixels, [8, 3, model.ImageSize, model.ImageSize]);
        var process = Process.GetCurrentProcess();
        foreach (var (label, call) in new (string, Action)[] { ("managedclip", () => model.EncodeImages(pixels, 8)), ("onnxruntime", () => Infer(image, "pixels", tensor)),
            ("managedclip", () => model.EncodeImages(pixels, 8)), ("onnxruntime", () => Infer(image, "pixels", tensor)) })
        {
            call();
            process.Refresh();
            var cpu0 = process.TotalProcessorTime;
            var watch = Stopwatch.StartNew();
            int calls = 0;
            while (watch.Elapsed.TotalSeconds < 4) { call(); calls++; }
            process.Refresh();
            double wall = watch.Elapsed.TotalSeconds, cpu = (process.TotalProcessorTime - cpu0).TotalSeconds;
            Console.WriteLine($"{label,-12} {8 * calls / wall,6:0.0} images/s, CPU {cpu / wall:0.00} cores busy, load {LoadAverage()}");
        }
    }

    /// <summary>The peers compute the same thing: ONNX Runtime's features against ManagedClip's on the same inputs (relative error over the reference spread).</summary>
    public static bool Check(string dir, Action<string>? log = null, string[]? models = null)
    {
        log ??= Console.WriteLine;
        bool ok = true;
        foreach (string name in models ?? Models)
        {
            using var model = ClipModel.Load(Path.Combine(dir, name + ".safetensors"), new ClipModelOptions { MaxThreads = Threads });
            var options = new SessionOptions { IntraOpNumThreads = Threads };
            int size = model.ImageSize, batch = 4, e = model.EmbedDim;
            var pixels = Pixels(batch, size);
            var mc = model.EncodeImages(pixels, batch).SelectMany(r => r).ToArray();
            using var image = new InferenceSession(Path.Combine(dir, $"{name}.image.onnx"), options);
            using var imageOut = image.Run([NamedOnnxValue.CreateFromTensor("pixels", new DenseTensor<float>(pixels, [batch, 3, size, size]))]);
            var ort = imageOut.First().AsTensor<float>().ToArray();
            double imageError = RelativeError(mc, ort, batch, e);
            var ids = Prompts(batch, 77, 77);
            var mcText = model.EncodeTokens(ids, fullContext: true).SelectMany(r => r).ToArray();
            using var text = new InferenceSession(Path.Combine(dir, $"{name}.text.onnx"), options);
            using var textOut = text.Run([NamedOnnxValue.CreateFromTensor("ids", new DenseTensor<long>(ids.SelectMany(r => r.Select(i => (long)i)).ToArray(), [batch, 77]))]);
            double textError = RelativeError(mcText, textOut.First().AsTensor<float>().ToArray(), batch, e);
            log($"{name}: ManagedClip vs ONNX Runtime, relative error image {imageError:E2}, text {textError:E2} (batch {batch}, {ort.Length / batch} features each)");
            ok &= ort.Length == mc.Length && imageError < 1e-3 && textError < 1e-3;
        }
        return ok;
    }

    /// <summary>‖a − b‖ / ‖b − mean row of b‖, worst row: the parity tests' measure.</summary>
    static double RelativeError(float[] a, float[] b, int rows, int width)
    {
        if (a.Length != b.Length) return double.PositiveInfinity;
        var mean = new double[width];
        for (int r = 0; r < rows; r++) for (int j = 0; j < width; j++) mean[j] += b[r * width + j] / rows;
        double spread = 0, worst = 0;
        for (int r = 0; r < rows; r++) for (int j = 0; j < width; j++) spread = Math.Max(spread, Math.Abs(b[r * width + j] - mean[j]));
        for (int r = 0; r < rows; r++)
        {
            double d = 0, s = 0;
            for (int j = 0; j < width; j++) { double x = a[r * width + j] - b[r * width + j]; d += x * x; double y = b[r * width + j] - mean[j]; s += y * y; }
            worst = Math.Max(worst, Math.Sqrt(d) / Math.Max(Math.Sqrt(s), 1e-30));
        }
        return worst;
    }

    static void Infer(InferenceSession session, string input, Tensor<float> tensor)
    {
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(input, tensor)]);
        _ = results.First().AsTensor<float>()[0, 0];
    }

    static void Infer(InferenceSession session, string input, Tensor<long> tensor)
    {
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(input, tensor)]);
        _ = results.First().AsTensor<float>()[0, 0];
    }

    /// <summary>One round of the PyTorch peer in a child process, OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for it alone.</summary>
    static JsonElement? PyTorchRound(string dir, Dictionary<string, List<double>> samples)
    {
        string script = Path.Combine(RepositoryRoot(), "bench", "peer", "export_onnx.py");
        string json = Path.Combine(dir, "pytorch-round.json");
        var start = new ProcessStartInfo("/usr/bin/python3", [script, "time", dir, json]) { RedirectStandardOutput = true, RedirectStandardError = true };
        start.Environment.Remove("OPENBLAS_CORETYPE");
        start.Environment.Remove("OPENBLAS_L2_SIZE");
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        Console.Write(stdout);
        if (process.ExitCode != 0) { Console.Error.WriteLine(stderr.Result); throw new InvalidOperationException("PyTorch peer failed"); }
        using var document = JsonDocument.Parse(File.ReadAllText(json));
        foreach (var r in document.RootElement.GetProperty("results").EnumerateArray())
        {
            string tower = r.GetProperty("tower").GetString()!;
            string key = $"{r.GetProperty("model").GetString()}|{tower}|{r.GetProperty("batch").GetInt32()}|{(tower == "text" ? "77 tokens" : "")}";
            if (!samples.TryGetValue(key, out var list)) samples[key] = list = [];
            list.AddRange(r.GetProperty("seconds").EnumerateArray().Select(s => s.GetDouble()));
        }
        return document.RootElement.Clone();
    }

    static (long Peak, long Checkpoint) MemoryChild(string runtime, string dir, string model)
    {
        var start = new ProcessStartInfo(Environment.ProcessPath!, [typeof(Peer).Assembly.Location, "memory", runtime, dir, model]) { RedirectStandardOutput = true };
        if (Environment.ProcessPath!.EndsWith("ManagedClip.Peer", StringComparison.Ordinal)) start = new ProcessStartInfo(Environment.ProcessPath, ["memory", runtime, dir, model]) { RedirectStandardOutput = true };
        using var process = Process.Start(start)!;
        string line = process.StandardOutput.ReadToEnd().Trim().Split('\n').Last();
        process.WaitForExit();
        var parts = line.Split(' ');
        return (long.Parse(parts[0]), long.Parse(parts[1]));
    }

    /// <summary>Child mode: load one runtime's model (both towers), encode 8 images three times, print "peakRss checkpointBytes".</summary>
    public static int Memory(string runtime, string dir, string name)
    {
        string checkpoint = Path.Combine(dir, name + ".safetensors");
        var pixels = Pixels(8, 224);
        if (runtime == "managedclip")
        {
            using var model = ClipModel.Load(checkpoint, new ClipModelOptions { MaxThreads = Threads });
            for (int i = 0; i < 3; i++) model.EncodeImages(pixels, 8);
        }
        else
        {
            var options = new SessionOptions { IntraOpNumThreads = Threads, InterOpNumThreads = 1 };
            using var image = new InferenceSession(Path.Combine(dir, $"{name}.image.onnx"), options);
            using var text = new InferenceSession(Path.Combine(dir, $"{name}.text.onnx"), options);
            var tensor = new DenseTensor<float>(pixels, [8, 3, 224, 224]);
            for (int i = 0; i < 3; i++) Infer(image, "pixels", tensor);
        }
        Console.WriteLine($"{PeakRss()} {new FileInfo(checkpoint).Length}");
        return 0;
    }

    static long PeakRss()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
        return Process.GetCurrentProcess().PeakWorkingSet64;
    }

    static string Report(List<Case> cases, Dictionary<string, List<double>> torch, JsonElement? torchInfo,
        List<(string Runtime, long Peak, long Checkpoint)> memory, string loadBefore, string loadAfter, int rounds, double seconds, List<string> checks)
    {
        var sb = new StringBuilder();
        string cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':')[1].Trim() ?? "?";
        sb.AppendLine("# Benchmarks");
        sb.AppendLine();
        sb.AppendLine($"Generated by `bench/run-peers.sh` on {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC. Machine: {cpu}, {Environment.ProcessorCount} cores, " +
            $"{System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription}, ManagedClip kernels at {ManagedClip.Kernels.Simd.Describe(ManagedClip.Kernels.Simd.Best)}. " +
            $"Load average before/after: {loadBefore} / {loadAfter} (a shared machine: other jobs ran at the same time).");
        sb.AppendLine();
        sb.AppendLine($"Same seeded full-size fp32 weights for every runtime (ViT-B/32 and RN50; the parity tests' formula). {Threads} threads each: " +
            $"ManagedClip `MaxThreads = {Threads}`, ONNX Runtime {typeof(InferenceSession).Assembly.GetName().Version} (C#, `IntraOpNumThreads = {Threads}`, ONNX exports of the same weights, opset 14), " +
            $"PyTorch {(torchInfo?.GetProperty("torch").GetString() ?? "-")} (`torch.set_num_threads({Threads})`, OpenBLAS kernel `{(torchInfo?.GetProperty("openblas").GetProperty("corename").GetString() ?? "-")}` chosen by OpenBLAS itself). " +
            $"{rounds} interleaved rounds of {seconds:0} s per case; the figure is the median over all timed calls.");
        sb.AppendLine();
        sb.AppendLine("| model | tower | batch | ManagedClip items/s | ONNX Runtime items/s | PyTorch items/s | ManagedClip / ORT | ManagedClip / PyTorch | ManagedClip GFLOP/s | ms/item (MC / ORT) | cores busy (MC / ORT) | MC / ORT per busy core |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var group in cases.GroupBy(c => c.Key))
        {
            var mc = group.FirstOrDefault(c => c.Runtime == "managedclip");
            var ort = group.FirstOrDefault(c => c.Runtime == "onnxruntime");
            if (mc is null) continue;
            double mcRate = mc.Batch / Median(mc.Seconds);
            double? ortRate = ort is null ? null : ort.Batch / Median(ort.Seconds);
            double? torchRate = torch.TryGetValue(mc.Key, out var ts) && ts.Count > 0 ? mc.Batch / Median(ts) : null;
            string tower = mc.Tower + (mc.Note.Length > 0 ? $" ({mc.Note})" : "");
            sb.AppendLine($"| {(mc.Model == "vit-b32" ? "ViT-B/32" : "RN50")} | {tower} | {mc.Batch} | {mcRate:0.0} | {Fmt(ortRate)} | {Fmt(torchRate)} | " +
                $"{(ortRate is null ? (mc.Note.Contains("EOT") ? "see text" : "-") : $"{mcRate / ortRate:0.00}×")} | {(torchRate is null ? "-" : $"{mcRate / torchRate:0.00}×")} | " +
                $"{mc.FlopsPerItem * mcRate / 1e9:0} | {1000 / mcRate:0.0} / {(ortRate is null ? "-" : $"{1000 / ortRate:0.0}")} | " +
                $"{mc.CoresBusy:0.00} / {(ort is null ? "-" : $"{ort.CoresBusy:0.00}")} | " +
                $"{(ort is null || ortRate is null || ort.CoresBusy == 0 ? "-" : $"{mcRate / mc.CoresBusy / (ortRate.Value / ort.CoresBusy):0.00}×")} |");
        }
        var eot = cases.FirstOrDefault(c => c.Note.Contains("EOT") && c.Batch == 8);
        var ortText = cases.FirstOrDefault(c => c.Runtime == "onnxruntime" && c.Tower == "text" && c.Batch == 8);
        if (eot is not null && ortText is not null)
        {
            sb.AppendLine();
            sb.AppendLine($"With the end-of-text shortcut, {PromptTokens}-token prompts at batch 8 run at {eot.Batch / Median(eot.Seconds):0} prompts/s, " +
                $"{Median(ortText.Seconds) / Median(eot.Seconds):0.0}× ONNX Runtime's full-context rate (which is the same for any prompt length).");
        }
        sb.AppendLine();
        sb.AppendLine("Cores busy = process CPU time / wall time during that runtime's windows: on this shared machine the second core is often taken by other jobs, " +
            "so the per-busy-core ratio is the steadier comparison of the two engines' efficiency.");
        sb.AppendLine();
        sb.AppendLine("Same results: " + string.Join("; ", checks) + ".");
        sb.AppendLine();
        sb.AppendLine("Peak memory (VmHWM of a fresh process that loads the whole model, both towers, and encodes 8 images three times; ViT-B/32 fp32 checkpoint):");
        sb.AppendLine();
        sb.AppendLine("| runtime | peak RSS | checkpoint | ratio |");
        sb.AppendLine("|---|---|---|---|");
        foreach (var (runtime, peak, checkpoint) in memory)
            sb.AppendLine($"| {runtime} | {peak / 1048576.0:0} MiB | {checkpoint / 1048576.0:0} MiB | {(double)peak / checkpoint:0.00}× |");
        return sb.ToString();
    }

    static string Fmt(double? v) => v is null ? "-" : $"{v:0.0}";

    static double Median(List<double> values)
    {
        var s = values.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : 0.5 * (s[s.Length / 2 - 1] + s[s.Length / 2]);
    }

    static float[] Pixels(int batch, int size)
    {
        var random = new Random(1234);
        var pixels = new float[batch * 3 * size * size];
        for (int i = 0; i < pixels.Length; i++) pixels[i] = (float)(random.NextDouble() * 4 - 2);
        return pixels;
    }

    /// <summary>Prompts of <paramref name="tokens"/> ids (start, seeded words, end), zero padded to the context, as the tokenizer lays them out.</summary>
    static int[][] Prompts(int batch, int tokens, int context)
    {
        var random = new Random(5678);
        return Enumerable.Range(0, batch).Select(_ =>
        {
            var row = new int[context];
            row[0] = 49406;
            for (int i = 1; i < tokens - 1; i++) row[i] = random.Next(1, 49405);
            row[tokens - 1] = 49407;
            return row;
        }).ToArray();
    }

    static string LoadAverage()
    {
        try { return string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); } catch (IOException) { return "?"; }
    }

    static string RepositoryRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "ManagedClip.sln"))) return d.FullName;
        throw new DirectoryNotFoundException("ManagedClip.sln not found above " + AppContext.BaseDirectory);
    }

    static int Option(string[] options, string name, int fallback) => OptionText(options, name) is { } v ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;

    static string? OptionText(string[] options, string name)
    {
        int i = Array.IndexOf(options, name);
        return i >= 0 && i + 1 < options.Length ? options[i + 1] : null;
    }
}
