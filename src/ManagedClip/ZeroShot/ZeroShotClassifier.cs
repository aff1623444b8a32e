using System.Numerics.Tensors;
using System.Security.Cryptography;

namespace ManagedClip.ZeroShot;

/// <summary>How class embeddings are built: where they are cached, and who hears about progress.</summary>
public sealed record ZeroShotOptions
{
    /// <summary>The cache; null builds every time and stores nothing.</summary>
    public ClassEmbeddingCache? Cache { get; init; }

    /// <summary>Called as prompts are encoded: (prompts done, prompts to encode). Not called on a cache hit.</summary>
    public Action<int, int>? Progress { get; init; }
}

/// <summary>One class of a prediction: its index among the labels, the label, the softmax probability and the logit (scale × cosine).</summary>
public readonly record struct Prediction(int ClassIndex, string Label, float Probability, float Logit);

/// <summary>
/// Zero-shot classification (the CLIP notebook <c>Prompt_Engineering_for_ImageNet.ipynb</c>, <c>zeroshot_classifier</c>): each label is put into every template, the prompts are encoded, each
/// embedding is L2-normalized, averaged over the templates and normalized again — one unit vector per class. An
/// image's logits are exp(logit_scale) × the cosine between its features and each class vector; probabilities are
/// their softmax.
/// </summary>
public sealed class ZeroShotClassifier
{
    readonly float[] _classes; // [classes, dim], unit rows

    /// <summary>The class labels, in the order of the probabilities' indices.</summary>
    public IReadOnlyList<string> Labels { get; }
    /// <summary>The prompt templates each label was put into (<c>{}</c> marks the label).</summary>
    public IReadOnlyList<string> Templates { get; }
    /// <summary>Length of the image features <see cref="Classify"/> takes.</summary>
    public int EmbedDim { get; }
    /// <summary>The logit multiplier exp(logit_scale), as the original (no clamp).</summary>
    public float Scale { get; }
    /// <summary>The class embeddings [classes × EmbedDim], row by row, each a unit vector.</summary>
    public ReadOnlySpan<float> ClassEmbeddings => _classes;
    /// <summary>labels × templates.</summary>
    public int PromptCount => Labels.Count * Templates.Count;
    /// <summary>How many prompts went through the text tower to build this classifier: 0 when it came from the cache (identical prompts are encoded once).</summary>
    public int EncodedPrompts { get; }
    /// <summary>True when the class embeddings were read from the cache.</summary>
    public bool FromCache { get; }
    /// <summary>The cache file read or written; null without a cache.</summary>
    public string? CachePath { get; }
    /// <summary>Why the cache entry found for these prompts could not be used (damaged, truncated, another format; it names the file),
    /// so the embeddings were recomputed and the entry rewritten; null when there was none or it was good. The CLI prints it under --verbose.</summary>
    public string? CacheProblem { get; }

    ZeroShotClassifier(IReadOnlyList<string> labels, IReadOnlyList<string> templates, float[] classes, int dim, float scale, int encoded, bool fromCache, string? cachePath,
        string? cacheProblem = null)
    {
        Labels = labels; Templates = templates; _classes = classes; EmbedDim = dim; Scale = scale;
        EncodedPrompts = encoded; FromCache = fromCache; CachePath = cachePath; CacheProblem = cacheProblem;
    }

    /// <summary>A classifier over ready class embeddings ([labels × dim], normalized here) and a logit multiplier.</summary>
    public static ZeroShotClassifier FromClassEmbeddings(IReadOnlyList<string> labels, ReadOnlySpan<float> classEmbeddings, int dim, float scale)
    {
        ValidateLabels(labels);
        if (dim < 1 || classEmbeddings.Length != labels.Count * dim)
            throw new ArgumentException($"expected {labels.Count} × {dim} values, got {classEmbeddings.Length}", nameof(classEmbeddings));
        var classes = classEmbeddings.ToArray();
        for (int c = 0; c < labels.Count; c++) ClipModel.NormalizeInPlace(classes.AsSpan(c * dim, dim));
        return new ZeroShotClassifier(labels.ToArray(), [PromptTemplates.Placeholder], classes, dim, scale, 0, false, null);
    }

    /// <summary>
    /// Builds (or reads from the cache) the class embeddings of <paramref name="labels"/> × <paramref name="templates"/>
    /// (default <see cref="PromptTemplates.Default"/>). Throws <see cref="PromptException"/> for an empty label list, an
    /// empty label, a template without <c>{}</c>, or a prompt longer than the model's context.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="model"/> is null.</exception>
    /// <exception cref="PromptException">The labels or templates are empty, a template has no <c>{}</c>, or a prompt does not fit the context.</exception>
    /// <exception cref="VocabularyException">The model has no vocabulary.</exception>
    /// <exception cref="ClipException">The class embeddings cannot be written to <see cref="ZeroShotOptions.Cache"/>.</exception>
    /// <exception cref="ObjectDisposedException">The model has been disposed.</exception>
    /// <example>
    /// <code>
    /// var classifier = ZeroShotClassifier.Create(model, ["cat", "dog", "bird"]);
    /// var result = model.EncodeImageFiles(["photo.jpg"]).Single();
    /// if (result.Error is not null) throw result.Error;
    /// foreach (var p in classifier.Classify(result.Features!, top: 3)) Console.WriteLine($"{p.Label}: {p.Probability:P1}");
    /// </code>
    /// </example>
    public static ZeroShotClassifier Create(ClipModel model, IEnumerable<string> labels, IEnumerable<string>? templates = null, ZeroShotOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(labels);
        options ??= new ZeroShotOptions();
        return CreateFromArrays(model, labels.ToArray(), (templates ?? PromptTemplates.Default).ToArray(), options);
    }

    static ZeroShotClassifier CreateFromArrays(ClipModel model, string[] labels, string[] templates, ZeroShotOptions options)
    {
        ValidateLabels(labels);
        if (templates.Length == 0) throw new PromptException("no templates given");
        foreach (var template in templates) PromptTemplates.Validate(template);

        // Identical prompts share one row. A cache hit needs no tokenizing; otherwise every prompt is tokenized and checked against the context first.
        int classCount = labels.Length, templateCount = templates.Length, dim = model.EmbedDim;
        int context = model.TextContextLength;
        var tokenizer = model.Tokenizer;
        var uniqueIndex = new Dictionary<string, int>(StringComparer.Ordinal);
        var uniquePrompts = new List<string>();
        var promptRow = new int[classCount * templateCount];
        for (int c = 0; c < classCount; c++)
            for (int t = 0; t < templateCount; t++)
            {
                string prompt = PromptTemplates.Fill(templates[t], labels[c]);
                if (!uniqueIndex.TryGetValue(prompt, out int row)) { uniqueIndex[prompt] = row = uniquePrompts.Count; uniquePrompts.Add(prompt); }
                promptRow[c * templateCount + t] = row;
            }
        // The original multiplies by exp(logit_scale) unclamped; past ln(float.MaxValue) ≈ 88.7 that is Inf and its probabilities are
        // NaN for every image. Training clamps logit_scale at ln(100), so such a value is a broken checkpoint: refused once, here.
        float scale = MathF.Exp(model.LogitScale);
        if (!float.IsFinite(scale))
            throw new CheckpointException($"{model.SourcePath}: logit_scale is {model.LogitScale}, and exp(logit_scale) is not a finite float32, so no probabilities can be computed (the released models hold ln(100) = 4.6052)");
        var cache = options.Cache;
        // The key names the weights, the exact prompts (labels and templates) and the vocabulary's files; when those files
        // cannot be read, the prompts' token ids stand for the vocabulary instead (that costs tokenizing before the lookup).
        byte[]? vocabulary = cache is null ? null : VocabularyIdentity(tokenizer);
        byte[]? key = vocabulary is null ? null : CacheKey(model.Fingerprint, labels, templates, vocabulary, null);
        string? cacheProblem = null;
        if (key is not null && cache!.TryLoad(key, classCount, dim, out cacheProblem) is { } hit)
            return new ZeroShotClassifier(labels, templates, hit, dim, scale, 0, true, cache.PathOf(key));

        // Tokenized for the model's context, as EncodeTexts does; a prompt that does not fit is refused, not cut.
        var tokenized = new Tokenization.TokenizedText[uniquePrompts.Count];
        Parallel.For(0, tokenized.Length, new ParallelOptions { MaxDegreeOfParallelism = model.Threads }, i => tokenized[i] = tokenizer.Tokenize(uniquePrompts[i], context));
        for (int i = 0; i < tokenized.Length; i++)
            if (tokenized[i].Truncated)
                throw new PromptException($"prompt '{Shorten(uniquePrompts[i])}' is more than {context} tokens with its start and end tokens; the model's context holds {context}: shorten the label or the template");
        if (cache is not null && key is null)
        {
            key = CacheKey(model.Fingerprint, labels, templates, null, tokenized);
            if (cache.TryLoad(key, classCount, dim, out cacheProblem) is { } cached)
                return new ZeroShotClassifier(labels, templates, cached, dim, scale, 0, true, cache.PathOf(key));
        }

        // Encode shortest first: the text tower stops at a batch's longest prompt, so similar lengths batch cheaply.
        var order = Enumerable.Range(0, tokenized.Length).OrderBy(i => tokenized[i].Count).ToArray();
        var unit = new float[tokenized.Length][];
        const int Chunk = 256;
        options.Progress?.Invoke(0, order.Length);
        for (int start = 0; start < order.Length; start += Chunk)
        {
            int count = Math.Min(Chunk, order.Length - start);
            var ids = new int[count][];
            for (int k = 0; k < count; k++) ids[k] = tokenized[order[start + k]].Ids;
            var features = model.EncodeTokens(ids);
            for (int k = 0; k < count; k++) unit[order[start + k]] = ClipModel.Normalize(features[k]);
            options.Progress?.Invoke(start + count, order.Length);
        }

        var classes = new float[classCount * dim];
        var members = new float[templateCount][];
        for (int c = 0; c < classCount; c++)
        {
            for (int t = 0; t < templateCount; t++) members[t] = unit[promptRow[c * templateCount + t]];
            Ensemble(members, classes.AsSpan(c * dim, dim));
        }
        for (int c = 0; c < classCount; c++)
            if (!TensorPrimitives.IsFiniteAll(classes.AsSpan(c * dim, dim)))
                throw new ClipException($"{model.SourcePath}: the class embedding of label '{Shorten(labels[c])}' is not finite (the text tower's output overflowed for its prompts)");
        string? path = cache?.Store(key!, classes, classCount, dim);
        return new ZeroShotClassifier(labels, templates, classes, dim, scale, tokenized.Length, false, path, cacheProblem);
    }

    /// <summary>
    /// The notebook's ensemble (<c>zeroshot_classifier</c>): the mean of the L2-normalized template embeddings, normalized again.
    /// </summary>
    public static float[] Ensemble(IReadOnlyList<float[]> templateEmbeddings)
    {
        if (templateEmbeddings.Count == 0) throw new ArgumentException("no embeddings to average", nameof(templateEmbeddings));
        var result = new float[templateEmbeddings[0].Length];
        Ensemble(templateEmbeddings.Select(e => ClipModel.Normalize(e)).ToArray(), result);
        return result;
    }

    /// <summary>Mean of already unit vectors, normalized, into <paramref name="destination"/>.</summary>
    static void Ensemble(float[][] unitEmbeddings, Span<float> destination)
    {
        destination.Clear();
        foreach (var e in unitEmbeddings)
        {
            if (e.Length != destination.Length) throw new ArgumentException($"embeddings of {e.Length} and {destination.Length} values cannot be averaged");
            TensorPrimitives.Add(destination, e, destination);
        }
        TensorPrimitives.Divide(destination, unitEmbeddings.Length, destination);
        ClipModel.NormalizeInPlace(destination);
    }

    /// <summary>exp(logit_scale) × cosine(image, class) for every class, in label order.</summary>
    public float[] Logits(ReadOnlySpan<float> imageFeatures)
    {
        if (imageFeatures.Length != EmbedDim)
            throw new ArgumentException($"image features have {imageFeatures.Length} values, the classes {EmbedDim}", nameof(imageFeatures));
        float norm = TensorPrimitives.Norm(imageFeatures);
        float factor = norm > 0 ? Scale / norm : 0;
        var logits = new float[Labels.Count];
        for (int c = 0; c < logits.Length; c++)
            logits[c] = factor * TensorPrimitives.Dot(imageFeatures, _classes.AsSpan(c * EmbedDim, EmbedDim));
        return logits;
    }

    /// <summary>The softmax of <see cref="Logits"/>, in label order.</summary>
    public float[] Probabilities(ReadOnlySpan<float> imageFeatures) => SoftMax(Logits(imageFeatures));

    /// <summary>softmax with the largest logit subtracted first, as torch.softmax does: exp(logit) alone overflows float32 past 88.7.</summary>
    static float[] SoftMax(float[] logits)
    {
        var probabilities = new float[logits.Length];
        TensorPrimitives.Subtract(logits, TensorPrimitives.Max(logits), probabilities);
        TensorPrimitives.SoftMax(probabilities, probabilities);
        return probabilities;
    }

    /// <summary>The <paramref name="top"/> most probable classes, most probable first (ties: label order).</summary>
    /// <param name="imageFeatures">An image's features [<see cref="EmbedDim"/>], raw or unit (they are normalized here).</param>
    /// <param name="top">How many classes to return, at least 1; more than the labels returns them all.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="top"/> is less than 1.</exception>
    /// <exception cref="ArgumentException">The features do not have <see cref="EmbedDim"/> values.</exception>
    /// <example>
    /// <code>
    /// foreach (var p in classifier.Classify(features, top: 3)) Console.WriteLine($"{p.Label}: {p.Probability:P1}");
    /// </code>
    /// </example>
    public Prediction[] Classify(ReadOnlySpan<float> imageFeatures, int top = 5)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(top, 1);
        var logits = Logits(imageFeatures);
        var probabilities = SoftMax(logits);
        return Enumerable.Range(0, logits.Length)
            .OrderByDescending(c => logits[c]).ThenBy(c => c)
            .Take(top)
            .Select(c => new Prediction(c, Labels[c], probabilities[c], logits[c]))
            .ToArray();
    }

    static void ValidateLabels(IReadOnlyList<string> labels)
    {
        ArgumentNullException.ThrowIfNull(labels);
        if (labels.Count == 0) throw new PromptException("no labels given: the label list is empty");
        for (int i = 0; i < labels.Count; i++)
            if (string.IsNullOrWhiteSpace(labels[i])) throw new PromptException($"label {i + 1} of {labels.Count} is empty");
    }

    static string Shorten(string text) => text.Length <= 60 ? text : text[..57] + "...";

    /// <summary>SHA-256 of the vocabulary's files (the BPE file, or vocab.json and the merges.txt beside it), or null when they cannot be read.</summary>
    static byte[]? VocabularyIdentity(Tokenization.ClipTokenizer tokenizer)
    {
        try
        {
            if (!File.Exists(tokenizer.Source)) return null;
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            hash.AppendData(File.ReadAllBytes(tokenizer.Source));
            if (tokenizer.Source.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
            {
                string merges = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(tokenizer.Source))!, "merges.txt");
                if (!File.Exists(merges)) return null;
                hash.AppendData(File.ReadAllBytes(merges));
            }
            return hash.GetHashAndReset();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }

    /// <summary>
    /// SHA-256 of the model fingerprint, the labels, the templates, and the vocabulary: the hash of its files, or else
    /// every prompt's token ids. Either way another vocabulary is another key.
    /// </summary>
    static byte[] CacheKey(string fingerprint, IReadOnlyList<string> labels, IReadOnlyList<string> templates, byte[]? vocabulary, Tokenization.TokenizedText[]? prompts)
    {
        using var digest = new Storage.Sha256Digest();
        digest.Append("managedclip-class-embeddings-v2");   // v2: the shared digest writes integers in 8 bytes, v1 wrote 4
        digest.Append(fingerprint);
        digest.Append(labels.Count); foreach (var label in labels) digest.Append(label);
        digest.Append(templates.Count); foreach (var template in templates) digest.Append(template);
        if (vocabulary is not null) { digest.Append("vocabulary-files"); digest.AppendBytes(vocabulary); }
        else
        {
            digest.Append("token-ids");
            digest.Append(prompts!.Length);
            foreach (var prompt in prompts) { digest.Append(prompt.Count); foreach (int id in prompt.Ids.AsSpan(0, prompt.Count)) digest.Append(id); }
        }
        return digest.Finish();
    }
}
