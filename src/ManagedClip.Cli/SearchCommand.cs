using System.Diagnostics;
using System.Globalization;
using ManagedClip.Search;
using ManagedClip.ZeroShot;

namespace ManagedClip.Cli;

/// <summary>Text-to-image (or image-to-image) search over an index built by <c>managedclip index</c>.</summary>
internal sealed class SearchCommand : ICommand
{
    public CommandSpec Spec { get; } = new("search", "search --index INDEX [--model PATH] [--vocab PATH] [--device D] [--top K] [--json] (-- QUERY... | --image IMAGE)",
        "Find the indexed images closest to a text (or to an image): exact cosine similarity against every embedding, best first. " +
        "Without --model, the model (and vocabulary) recorded in the index is used; a model other than the index's is refused. " +
        "With --json, one object per hit: {\"query\", \"rank\", \"path\", \"score\"}. --verbose prints the timings on stderr.",
        ModelOptions.Names(("--index INDEX", "the index file written by managedclip index"), ModelOptions.Model, ModelOptions.Vocab,
            ("--image IMAGE", "search with an image instead of a text"),
            ("--top K", "number of hits per query (default 10)"),
            ModelOptions.Threads, ModelOptions.Device),
        [],
        ["managedclip search --index photos.mcidx -- \"a dog on a beach\"", "managedclip search --index photos.mcidx --top 3 --json --image query.jpg"]);

    public int Run(ParsedArguments args, Output output)
    {
        string indexPath = args.Required("--index");
        string? image = args.Value("--image");
        if (image is null && args.Inputs.Count == 0) throw new UsageException("no query given: put the text after --, or use --image IMAGE");
        if (image is not null && args.Inputs.Count > 0) throw new UsageException("give a text query or --image, not both");
        int top = args.Int("--top", 1, int.MaxValue) ?? 10;
        bool verbose = args.Has("--verbose");
        var clock = Stopwatch.StartNew();
        void Time(string what) { if (verbose) output.Diagnostics.WriteLine($"{what}: {clock.Elapsed.TotalMilliseconds:0.0} ms"); clock.Restart(); }

        if (!File.Exists(indexPath) && !Directory.Exists(indexPath))
            throw new IndexException($"{indexPath}: no such index file (build one with: managedclip index --model PATH --out {indexPath} DIR)");
        var index = EmbeddingIndex.Load(indexPath);
        Time($"index loaded ({index.Count} × {index.EmbedDim})");
        string modelPath = args.Value("--model") ?? index.ModelPath;
        string? vocab = args.Value("--vocab") ?? (args.Value("--model") is null ? index.VocabularyPath : null);
        using var model = ClipModel.Load(modelPath, new ClipModelOptions { MaxThreads = args.Int("--threads", 1, 1024) ?? 0, VocabularyPath = vocab, Device = Devices.Open(args.Value("--device")) });
        index.EnsureSameModel(model, indexPath);
        Time("model loaded");

        var queries = new List<(string Name, float[] Features)>();
        if (image is not null)
        {
            var result = model.EncodeImageFiles([image]).Single();
            if (result.Error is not null) throw result.Error;
            queries.Add((image, result.Features!));
        }
        else
        {
            int context = model.TextContextLength;
            foreach (var query in args.Inputs)
            {
                if (string.IsNullOrWhiteSpace(query)) throw new PromptException("the query is empty");
                if (model.Tokenizer.Tokenize(query, context).Truncated)
                    throw new PromptException($"the query is more than {context} tokens with its start and end tokens; the model's context holds {context}: shorten it");
            }
            var features = model.EncodeTexts(args.Inputs);
            for (int i = 0; i < features.Length; i++) queries.Add((args.Inputs[i], features[i]));
        }
        Time("query encoded");

        foreach (var (name, features) in queries)
        {
            var hits = index.Search(features, top);
            Time("searched");
            if (output.Json)
            {
                foreach (var hit in hits)
                    output.WriteJson(w =>
                    {
                        w.WriteString("query", name);
                        w.WriteNumber("rank", hit.Rank);
                        w.WriteString("path", hit.Path);
                        w.WriteNumber("score", hit.Score);
                    });
                continue;
            }
            output.WriteLine($"query: {name}");
            if (hits.Length == 0) { output.WriteLine("  (the index is empty)"); continue; }
            foreach (var line in Table.Format(["rank", "score", "path"],
                hits.Select(h => new[] { h.Rank.ToString(CultureInfo.InvariantCulture), Table.Number(h.Score), h.Path }).ToArray(), [true, true, false], "  "))
                output.WriteLine(line);
        }
        return output.ExitCode;
    }
}
