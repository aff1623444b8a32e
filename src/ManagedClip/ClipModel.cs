using System.Numerics.Tensors;
using ManagedClip.Checkpoints;
using ManagedClip.Kernels;
using ManagedClip.Modeling;

namespace ManagedClip;

/// <summary>How a model runs: threads, and how many items go through the towers at once.</summary>
public sealed record ClipModelOptions
{
    /// <summary>Threads the kernels use; 0 means one per core.</summary>
    public int MaxThreads { get; init; }

    /// <summary>Images or texts encoded together; larger batches are split into chunks of this size, which bounds scratch memory.</summary>
    public int MaxBatch { get; init; } = 16;

    /// <summary>Tokenizer vocabulary (a BPE .txt.gz, vocab.json with merges.txt beside it, or a folder); null looks next to the weights.</summary>
    public string? VocabularyPath { get; init; }

    /// <summary>Where the forward passes run: null or <see cref="ClipDevice.Cpu"/> for the CPU kernels, or a device of the ManagedClip.Gpu package.</summary>
    public ClipDevice? Device { get; init; }
}

/// <summary>
/// A CLIP model loaded from a safetensors checkpoint: encodes preprocessed images and token ids (or texts)
/// into the joint embedding space. Load reads the checkpoint once, into memory the model owns, and closes its files:
/// what later happens to them on disk does not reach the model. Safe to call from several threads at once; Dispose
/// waits for running calls and refuses new ones.
/// </summary>
public sealed partial class ClipModel : IDisposable
{
    readonly Checkpoint _checkpoint;
    readonly IImageTower _imageTower;
    readonly TextTransformer _textTower;
    readonly ClipModelOptions _options;
    readonly Backends.ComputeBackend _backend;
    readonly string _fingerprint;

    /// <summary>The architecture: embedding dimension, image and text tower hyper-parameters.</summary>
    public ClipConfig Config => _checkpoint.Config;
    /// <summary>The tensor naming of the checkpoint loaded (OpenAI or Hugging Face).</summary>
    public CheckpointFormat Format => _checkpoint.Format;
    /// <summary>The file or folder the model was loaded from, as given to <see cref="Load"/>.</summary>
    public string SourcePath => _checkpoint.SourcePath;
    /// <summary>The folder the weights are in (vocabulary and preprocessor_config.json are looked for there).</summary>
    public string Folder => _checkpoint.Folder;
    /// <summary>The dtype most weights were stored in (F32, F16 or BF16); computation is in fp32 whatever it is.</summary>
    public TensorDType StorageDType => _checkpoint.StorageDType;
    /// <summary>Learned parameters in the checkpoint: its floating-point values, batch-norm running statistics excluded.</summary>
    public long ParameterCount => _checkpoint.ParameterCount;
    /// <summary>Side of the square images the image tower takes, in pixels (224 for ViT-B/32): inputs are [3, ImageSize, ImageSize].</summary>
    public int ImageSize => _imageTower.ImageSize;
    /// <summary>Length of an embedding (512 for ViT-B/32), text and image alike.</summary>
    public int EmbedDim => Config.EmbedDim;

    /// <summary>Where this model's forward passes run (<see cref="ClipModelOptions.Device"/>).</summary>
    public ClipDevice Device => _options.Device ?? ClipDevice.Cpu;

    /// <summary>The stored log temperature; similarities are scaled by exp(LogitScale) (100 for the released models).</summary>
    public float LogitScale { get; }

    ClipModel(Checkpoint checkpoint, ClipModelOptions options)
    {
        _checkpoint = checkpoint;
        _options = options;
        Kernels = KernelContext.Create(options.MaxThreads);
        _backend = (options.Device ?? ClipDevice.Cpu).CreateBackend(Kernels);
        try
        {
            var weights = new WeightLoader(checkpoint, _backend);
            // Hashing and checking every weight (the fingerprint, the finite check) is a second read of the file; with a second
            // thread allowed it runs beside the towers' reading and packing and costs no load time, with one it runs at the end.
            if (Threads > 1) checkpoint.StartVerification();
            // The two towers read disjoint weights: with a second thread allowed, the text tower is read and packed beside the image tower.
            var textTower = Threads > 1 && _backend.LoadsConcurrently ? Task.Run(() => new TextTransformer(weights, checkpoint.Config)) : null;
            try
            {
                _imageTower = checkpoint.Config.Vision.Architecture switch
                {
                    VisionArchitecture.VisionTransformer => new VisionTransformer(weights, checkpoint.Config),
                    VisionArchitecture.ModifiedResNet => new ModifiedResNet(weights, checkpoint.Config),
                    var other => throw new CheckpointException($"{checkpoint.SourcePath}: the {other} image tower is not supported yet"),
                };
            }
            catch
            {
                // Leave the files only once the text tower's reads have stopped; its own error, if any, matters less than this one.
                try { textTower?.Wait(); } catch (AggregateException) { }
                throw;
            }
            _textTower = textTower is null ? new TextTransformer(weights, checkpoint.Config) : textTower.GetAwaiter().GetResult();
            LogitScale = checkpoint.ReadScalar("logit_scale");
            _fingerprint = checkpoint.Fingerprint; // waits for the verification; a non-finite weight throws here, naming the tensor
        }
        catch
        {
            _backend.Dispose();   // the weights uploaded so far
            throw;
        }
    }

    /// <summary>Loads an OpenAI/open_clip <c>.safetensors</c> file, a sharded index, or a folder of either layout.</summary>
    /// <param name="path">A .safetensors file, a model.safetensors.index.json, or a folder holding either (OpenAI or Hugging Face layout).</param>
    /// <param name="options">Threads, batch size, vocabulary and device; null for the defaults.</param>
    /// <exception cref="ArgumentOutOfRangeException"><see cref="ClipModelOptions.MaxThreads"/> is negative or <see cref="ClipModelOptions.MaxBatch"/> is less than 1.</exception>
    /// <exception cref="CheckpointException">The path does not exist, is not a safetensors checkpoint, is damaged, holds a non-finite weight, or
    /// is not a CLIP architecture this library knows; the message names the file and, where there is one, the tensor.</exception>
    /// <exception cref="ClipException">The device cannot take the weights (ManagedClip.Gpu's GpuException, naming the MiB).</exception>
    /// <example>
    /// <code>
    /// using var model = ClipModel.Load("ViT-B-32.safetensors", new ClipModelOptions { MaxThreads = 4 });
    /// Console.WriteLine($"{model.EmbedDim}-dimensional embeddings from {model.ImageSize} × {model.ImageSize} images");
    /// </code>
    /// </example>
    public static ClipModel Load(string path, ClipModelOptions? options = null)
    {
        options ??= new ClipModelOptions();
        if (options.MaxThreads < 0) throw new ArgumentOutOfRangeException(nameof(options), "MaxThreads must be 0 (all cores) or positive");
        if (options.MaxBatch < 1) throw new ArgumentOutOfRangeException(nameof(options), "MaxBatch must be positive");
        // The model copies what it needs: the files are closed once it is built, or failed to build.
        using var checkpoint = Checkpoint.Open(path);
        return new ClipModel(checkpoint, options);
    }

    /// <summary>How this model's forward passes run: <see cref="ClipModelOptions.MaxThreads"/> threads, the machine's widest SIMD level.</summary>
    internal KernelContext Kernels { get; }

    /// <summary>Threads this model's calls may use (<see cref="ClipModelOptions.MaxThreads"/>, 0 being every core).</summary>
    internal int Threads => Kernels.Threads;

    /// <summary>pixels [count, 3, R, R] (preprocessed, normalized) → one raw feature vector [E] per image.</summary>
    public float[][] EncodeImages(ReadOnlySpan<float> pixels, int count) => EncodeImages(pixels, count, Threads);

    /// <summary><see cref="EncodeImages(ReadOnlySpan{float}, int)"/> on <paramref name="threads"/> threads (the features
    /// do not depend on how many).</summary>
    float[][] EncodeImages(ReadOnlySpan<float> pixels, int count, int threads)
    {
        using var call = _calls.Enter(this);
        int imageLength = 3 * ImageSize * ImageSize;
        if (count < 0 || pixels.Length != (long)count * imageLength)
            throw new ArgumentException($"expected {count} images of [3, {ImageSize}, {ImageSize}] = {(long)count * imageLength} values, got {pixels.Length}", nameof(pixels));
        var results = new float[count][];
        var features = new float[Math.Min(count, _options.MaxBatch) * EmbedDim];
        for (int start = 0; start < count; start += _options.MaxBatch)
        {
            int batch = Math.Min(_options.MaxBatch, count - start);
            _imageTower.Forward(pixels.Slice(start * imageLength, batch * imageLength), batch, features, threads);
            for (int b = 0; b < batch; b++) results[start + b] = features.AsSpan(b * EmbedDim, EmbedDim).ToArray();
        }
        return results;
    }

    /// <summary>One preprocessed image [3, R, R] → raw features [E].</summary>
    public float[] EncodeImage(ReadOnlySpan<float> pixels) => EncodeImages(pixels, 1)[0];

    /// <summary>Token ids → one raw feature vector [E] per text.</summary>
    /// <param name="ids">One row per text, each at most the context length and holding an end-of-text id.</param>
    /// <param name="fullContext">Run all context positions instead of stopping at the last end-of-text token (same result, for benchmarks against runtimes that always do).</param>
    public float[][] EncodeTokens(IReadOnlyList<int[]> ids, bool fullContext = false)
    {
        using var call = _calls.Enter(this);
        return EncodeTokensEntered(ids, fullContext);
    }

    /// <summary><see cref="EncodeTokens"/> for a caller that has entered the call gate already.</summary>
    float[][] EncodeTokensEntered(IReadOnlyList<int[]> ids, bool fullContext = false)
    {
        for (int i = 0; i < ids.Count; i++)
            if (_textTower.Problem(ids[i]) is { } problem) throw new ArgumentException($"{SourcePath}: token ids row {i}: {problem}", nameof(ids));
        var results = new float[ids.Count][];
        var features = new float[Math.Min(ids.Count, _options.MaxBatch) * EmbedDim];
        for (int start = 0; start < ids.Count; start += _options.MaxBatch)
        {
            int batch = Math.Min(_options.MaxBatch, ids.Count - start);
            var chunk = new int[batch][];
            for (int b = 0; b < batch; b++) chunk[b] = ids[start + b];
            _textTower.Forward(chunk, features, Threads, fullContext);
            for (int b = 0; b < batch; b++) results[start + b] = features.AsSpan(b * EmbedDim, EmbedDim).ToArray();
        }
        return results;
    }

    /// <summary>False when features hold NaN or ±Inf: the model's output overflowed for that input.</summary>
    public static bool IsFinite(ReadOnlySpan<float> features) => TensorPrimitives.IsFiniteAll(features);

    /// <summary>The error for an input whose features are not finite, naming it.</summary>
    public static ClipException NotFinite(string input) =>
        new($"{input}: its features are not finite (the model's output overflowed for this input)");

    /// <summary>f / ‖f‖₂, as the original (no epsilon; a zero vector stays zero).</summary>
    public static float[] Normalize(ReadOnlySpan<float> features)
    {
        var result = features.ToArray();
        NormalizeInPlace(result);
        return result;
    }

    /// <summary>
    /// <see cref="Normalize"/> in place, the one L2 normalization of the library. Within <paramref name="unitTolerance"/> of
    /// norm 1 the vector is left as it is (the index keeps the bits of features that arrive normalized already).
    /// </summary>
    internal static void NormalizeInPlace(Span<float> features, float unitTolerance = 0f)
    {
        float norm = TensorPrimitives.Norm(features);
        if (norm > 0 && MathF.Abs(norm - 1) > unitTolerance) TensorPrimitives.Divide(features, norm, features);
    }
}
