using System.Diagnostics;
using System.Text.Json;
using ManagedClip.ZeroShot;

namespace ManagedClip.Cli;

/// <summary>Zero-shot classification of image files into labels nobody trained on, with a prompt ensemble.</summary>
internal sealed class ClassifyCommand : ICommand
{
    public CommandSpec Spec { get; } = new("classify",
        "classify --model PATH [--vocab PATH] [--device D] (--labels \"a,b,c\" | --labels-file F) [--template T]... [--templates-file F] [--top K] [--json] IMAGE...",
        "Zero-shot classification: each label is put into every template ({} stands for the label), the prompts are encoded and averaged " +
        "per label (mean of unit vectors, normalized again), and each image gets the softmax of 100 × cosine (exp(logit_scale)) over the labels, " +
        "most probable first. Class embeddings are cached on disk, keyed by the model's fingerprint and the exact prompts, so a large ensemble " +
        "is encoded once. Default templates: " + string.Join(" | ", PromptTemplates.Default) + ".",
        ModelOptions.Names(ModelOptions.Model, ModelOptions.Vocab,
            ("--labels LIST", "comma-separated labels, e.g. \"cat,dog,hot air balloon\""),
            ("--labels-file F", "labels, one per line (blank lines and lines starting with # skipped), or a JSON file: an array or an object with \"labels\" or \"classes\""),
            ("--template T", "a prompt template with {} for the label, e.g. \"a photo of a {}.\"; repeat for an ensemble (replaces the default set)"),
            ("--templates-file F", "templates, one per line, or a JSON file: an array or an object with \"templates\" (added to any --template)"),
            ("--top K", "show the K most probable labels (default 5)"),
            ("--cache-dir DIR", $"class-embedding cache (default ${ClassEmbeddingCache.EnvironmentVariable}, else $XDG_CACHE_HOME/managedclip, else ~/.cache/managedclip)"),
            ModelOptions.Threads, ModelOptions.Device),
        [("--no-cache", "neither read nor write the class-embedding cache"), .. ImageFlags.Both],
        [
            "managedclip classify --model clip-vit-base-patch32/ --labels \"cat,dog,bird\" cat.jpg",
            "managedclip classify --model ViT-B-32.safetensors --vocab bpe_simple_vocab_16e6.txt.gz --labels-file imagenet_prompts.json --templates-file imagenet_prompts.json --top 3 --json photos/*.jpg",
        ]);

    public int Run(ParsedArguments args, Output output)
    {
        if (args.Inputs.Count == 0) throw new UsageException("no image given");
        var labels = ReadLabels(args);
        var templates = ReadTemplates(args);
        int top = args.Int("--top", 1, int.MaxValue) ?? 5;
        bool verbose = args.Has("--verbose");
        if (args.Has("--no-cache") && args.Value("--cache-dir") is not null) throw new UsageException("--no-cache and --cache-dir contradict each other");

        using var model = ModelOptions.Load(args);
        var cache = args.Has("--no-cache") ? null : new ClassEmbeddingCache(args.Value("--cache-dir") ?? ClassEmbeddingCache.DefaultDirectory());
        var clock = Stopwatch.StartNew();
        ZeroShotClassifier classifier;
        using (var progress = ProgressBar.Start(output.Diagnostics, "encoding prompts", "prompts"))
        {
            try { classifier = ZeroShotClassifier.Create(model, labels, templates, new ZeroShotOptions { Cache = cache, Progress = (done, total) => progress?.Report(done, total) }); }
            catch (ClipException e) when (cache is not null && e.InnerException is IOException or UnauthorizedAccessException && e.Message.StartsWith(cache.Directory, StringComparison.Ordinal))
            { throw new ClipException($"{e.Message}; on the command line: --cache-dir DIR, or --no-cache", e); }
        }
        if (verbose && classifier.CacheProblem is { } problem)
            output.Diagnostics.WriteLine($"warning: class-embedding cache entry not used: {problem}; recomputed and rewritten");
        if (verbose)
            output.Diagnostics.WriteLine(classifier.FromCache
                ? $"class embeddings: {classifier.Labels.Count} labels × {classifier.Templates.Count} templates read from cache {classifier.CachePath} in {clock.Elapsed.TotalSeconds:0.00} s"
                : $"class embeddings: {classifier.Labels.Count} labels × {classifier.Templates.Count} templates, {classifier.EncodedPrompts} prompts encoded in {clock.Elapsed.TotalSeconds:0.00} s" +
                  (classifier.CachePath is null ? " (not cached)" : $", cached at {classifier.CachePath}"));

        var preprocessing = ImageFlags.Apply(args, model.DefaultPreprocessOptions());
        foreach (var result in model.EncodeImageFiles(args.Inputs, preprocessing))
        {
            if (result.Error is not null) { output.Fail(result.Path, result.Error.Message); continue; }
            var predictions = classifier.Classify(result.Features!, Math.Min(top, classifier.Labels.Count));
            if (output.Json)
                output.WriteJson(w =>
                {
                    w.WriteString("input", result.Path);
                    w.WriteStartArray("predictions");
                    foreach (var p in predictions)
                    {
                        w.WriteStartObject();
                        w.WriteString("label", p.Label);
                        w.WriteNumber("probability", p.Probability);
                        w.WriteEndObject();
                    }
                    w.WriteEndArray();
                });
            else
            {
                output.WriteLine(result.Path);
                foreach (var line in Table.Format(["rank", "probability", "label"],
                    predictions.Select((p, i) => new[] { (i + 1).ToString(System.Globalization.CultureInfo.InvariantCulture), Table.Percent(p.Probability), p.Label }).ToArray(),
                    [true, true, false], "  "))
                    output.WriteLine(line);
            }
        }
        return output.ExitCode;
    }

    static IReadOnlyList<string> ReadLabels(ParsedArguments args)
    {
        string? list = args.Value("--labels"), file = args.Value("--labels-file");
        if (list is not null && file is not null) throw new UsageException("give --labels or --labels-file, not both");
        if (list is not null)
        {
            // What the command line says is checked as usage (exit 2); what a file holds is content (exit 1, from the classifier).
            var labels = string.IsNullOrWhiteSpace(list) ? [] : list.Split(',').Select(l => l.Trim()).ToArray();
            if (labels.Length == 0) throw new UsageException("--labels: the label list is empty");
            for (int i = 0; i < labels.Length; i++)
                if (labels[i].Length == 0) throw new UsageException($"--labels: label {i + 1} of {labels.Length} is empty");
            return labels;
        }
        if (file is not null) return ReadList(file, "labels", "classes");
        throw new UsageException("classify needs labels: --labels \"a,b,c\" or --labels-file F");
    }

    static IReadOnlyList<string>? ReadTemplates(ParsedArguments args)
    {
        var templates = new List<string>(args.Values("--template"));
        foreach (var template in templates)
        {
            try { PromptTemplates.Validate(template); }
            catch (PromptException e) { throw new UsageException($"--template: {e.Message}"); }
        }
        if (args.Value("--templates-file") is { } file)
        {
            var read = ReadList(file, "templates", null);
            if (read.Count == 0) throw new PromptException($"{file}: no templates in the file"); // unusable content, like an empty labels file: exit 1
            templates.AddRange(read);
        }
        return templates.Count > 0 ? templates : null;
    }

    /// <summary>A JSON array of strings, a JSON object holding one under one of the given keys, or text with one entry per line.</summary>
    internal static IReadOnlyList<string> ReadList(string path, string key, string? otherKey)
    {
        if (!File.Exists(path)) throw new UsageException($"{path}: no such file");
        byte[] bytes = File.ReadAllBytes(path);
        // A UTF-8 byte-order mark (Windows editors write one) is not part of the first label or template.
        var content = bytes.AsMemory(bytes.AsSpan().StartsWith(System.Text.Encoding.UTF8.Preamble) ? System.Text.Encoding.UTF8.Preamble.Length : 0);
        if (path.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
        {
            try
            {
                using var document = JsonDocument.Parse(content);
                var root = document.RootElement;
                if (root.ValueKind == JsonValueKind.Object)
                {
                    if (root.TryGetProperty(key, out var found) || (otherKey is not null && root.TryGetProperty(otherKey, out found))) root = found;
                    else throw new ClipException($"{path}: a JSON object here needs a \"{key}\"{(otherKey is null ? "" : $" or \"{otherKey}\"")} array");
                }
                if (root.ValueKind != JsonValueKind.Array || root.EnumerateArray().Any(e => e.ValueKind != JsonValueKind.String))
                    throw new ClipException($"{path}: expected an array of strings");
                return root.EnumerateArray().Select(e => e.GetString()!).ToArray();
            }
            catch (JsonException e) { throw new ClipException($"{path}: not valid JSON ({e.Message})", e); }
        }
        return System.Text.Encoding.UTF8.GetString(content.Span).Split('\n')
            .Select(line => line.Trim())
            .Where(line => line.Length > 0 && !line.StartsWith('#'))
            .ToArray();
    }
}
