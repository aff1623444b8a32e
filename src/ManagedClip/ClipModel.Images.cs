using ManagedClip.Imaging;

namespace ManagedClip;

/// <summary>One image file's outcome: its features, or the error that kept it out (the other files still run).</summary>
public readonly record struct ImageFileResult(string Path, float[]? Features, ClipException? Error);

public sealed partial class ClipModel
{
    /// <summary>The preprocessing this checkpoint expects (<see cref="PreprocessOptions.ForCheckpoint(string)"/>).</summary>
    public PreprocessOptions DefaultPreprocessOptions() => PreprocessOptions.ForCheckpoint(_checkpoint);

    /// <summary>
    /// Decodes, preprocesses and encodes image files in batches, in input order. Images are decoded and preprocessed on
    /// worker threads ahead of the image tower (<see cref="DecodePipeline{T}"/>), with at most a batch and two images per
    /// thread waiting, and <see cref="ClipModelOptions.MaxThreads"/> bounds decoding and the forward passes together
    /// (<see cref="ThreadBudget"/>). A file that fails to decode is reported in its result and the others are still encoded.
    /// </summary>
    /// <param name="paths">The image files (any format the decoder reads: PNG, JPEG, GIF, BMP, TIFF, WebP, ...).</param>
    /// <param name="preprocessing">Resize, crop and normalization; null for the checkpoint's own (<see cref="DefaultPreprocessOptions"/>).</param>
    /// <returns>One result per path, in input order: raw features [<see cref="EmbedDim"/>], or the <see cref="ClipException"/> that file raised (an <see cref="ImageInputException"/> when it cannot be read or decoded).</returns>
    /// <exception cref="ArgumentNullException"><paramref name="paths"/> is null.</exception>
    /// <exception cref="ArgumentException">The preprocessing crops to another size than <see cref="ImageSize"/>, or its options are invalid.</exception>
    /// <exception cref="ObjectDisposedException">The model has been disposed.</exception>
    /// <example>
    /// <code>
    /// foreach (var result in model.EncodeImageFiles(["cat.jpg", "dog.png"]))
    /// {
    ///     if (result.Error is not null) { Console.Error.WriteLine(result.Error.Message); continue; }
    ///     Console.WriteLine($"{result.Path}: {result.Features!.Length} features");
    /// }
    /// </code>
    /// </example>
    public IEnumerable<ImageFileResult> EncodeImageFiles(IEnumerable<string> paths, PreprocessOptions? preprocessing = null)
    {
        ArgumentNullException.ThrowIfNull(paths);
        var list = paths as IReadOnlyList<string> ?? paths.ToArray();   // a lazy sequence (Directory.EnumerateFiles) is read once, here
        // Refused here once disposed; each batch then enters through EncodeImages.
        using (_calls.Enter(this)) { }
        var preprocessor = new ImagePreprocessor(preprocessing ?? DefaultPreprocessOptions());
        if (preprocessor.Options.CropSize != ImageSize)
            throw new ArgumentException($"preprocessing crops to {preprocessor.Options.CropSize} px, the model takes {ImageSize} px", nameof(preprocessing));
        return EncodeImageFilesIterator(list, preprocessor);
    }

    IEnumerable<ImageFileResult> EncodeImageFilesIterator(IReadOnlyList<string> paths, ImagePreprocessor preprocessor)
    {
        int batchSize = _options.MaxBatch, imageLength = 3 * ImageSize * ImageSize, threads = Threads;
        var budget = new ThreadBudget(threads);
        using var pipeline = new DecodePipeline<(float[]? Pixels, ClipException? Error)>(paths.Count, threads, batchSize + 2 * threads, budget, i =>
        {
            try { return (preprocessor.Preprocess(paths[i]), null); }
            catch (ClipException e) { return (null, e); }
        });
        for (int start = 0; start < paths.Count; start += batchSize)
        {
            var decoded = new (float[]? Pixels, ClipException? Error)[Math.Min(batchSize, paths.Count - start)];
            for (int i = 0; i < decoded.Length; i++) decoded[i] = pipeline.Take();

            var good = Enumerable.Range(0, decoded.Length).Where(i => decoded[i].Pixels is not null).ToArray();
            var pixels = new float[good.Length * imageLength];
            for (int g = 0; g < good.Length; g++) decoded[good[g]].Pixels!.CopyTo(pixels, g * imageLength);
            float[][] features;
            int forwardThreads = budget.AcquireForForward();
            try { features = EncodeImages(pixels, good.Length, forwardThreads); }
            finally { budget.Release(forwardThreads); }
            int next = 0;
            for (int i = 0; i < decoded.Length; i++)
            {
                if (decoded[i].Pixels is null) { yield return new ImageFileResult(paths[start + i], null, decoded[i].Error); continue; }
                var result = features[next++];
                yield return IsFinite(result)
                    ? new ImageFileResult(paths[start + i], result, null)
                    : new ImageFileResult(paths[start + i], null, NotFinite(paths[start + i]));
            }
        }
    }

    /// <summary>
    /// One image from a stream (uploaded bytes, a blob, a file already open) → raw features [<see cref="EmbedDim"/>], decoded and preprocessed
    /// exactly as <see cref="EncodeImageFiles"/> does a file. The stream is read to its end and left open.
    /// </summary>
    /// <param name="stream">The encoded image (PNG, JPEG, GIF, BMP, TIFF, WebP, ...).</param>
    /// <param name="name">What error messages call the image (a file name, an upload's name).</param>
    /// <param name="preprocessing">Resize, crop and normalization; null for the checkpoint's own (<see cref="DefaultPreprocessOptions"/>).</param>
    /// <exception cref="ArgumentNullException"><paramref name="stream"/> is null.</exception>
    /// <exception cref="ArgumentException">The preprocessing crops to another size than <see cref="ImageSize"/>.</exception>
    /// <exception cref="ImageInputException">The bytes are not an image the decoder reads (the message names <paramref name="name"/>).</exception>
    /// <exception cref="ClipException">The model's output for this image is not finite.</exception>
    /// <exception cref="ObjectDisposedException">The model has been disposed.</exception>
    /// <example>
    /// <code>
    /// using var upload = request.Body;   // any readable stream
    /// float[] features = ClipModel.Normalize(model.EncodeImage(upload, "upload.jpg"));
    /// </code>
    /// </example>
    public float[] EncodeImage(Stream stream, string name = "image", PreprocessOptions? preprocessing = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var preprocessor = new ImagePreprocessor(preprocessing ?? DefaultPreprocessOptions());
        if (preprocessor.Options.CropSize != ImageSize)
            throw new ArgumentException($"preprocessing crops to {preprocessor.Options.CropSize} px, the model takes {ImageSize} px", nameof(preprocessing));
        var features = EncodeImage(preprocessor.Preprocess(stream, name));
        return IsFinite(features) ? features : throw NotFinite(name);
    }

    /// <summary>One image's encoded bytes → raw features [<see cref="EmbedDim"/>], as <see cref="EncodeImage(Stream, string, PreprocessOptions?)"/>.</summary>
    /// <param name="bytes">The encoded image (PNG, JPEG, GIF, BMP, TIFF, WebP, ...).</param>
    /// <param name="name">What error messages call the image.</param>
    /// <param name="preprocessing">Resize, crop and normalization; null for the checkpoint's own.</param>
    /// <exception cref="ArgumentException">The preprocessing crops to another size than <see cref="ImageSize"/>.</exception>
    /// <exception cref="ImageInputException">The bytes are not an image the decoder reads.</exception>
    /// <exception cref="ClipException">The model's output for this image is not finite.</exception>
    /// <exception cref="ObjectDisposedException">The model has been disposed.</exception>
    public float[] EncodeImage(ReadOnlyMemory<byte> bytes, string name = "image", PreprocessOptions? preprocessing = null)
    {
        // A MemoryStream over the caller's array when there is one (no copy); otherwise over a copy.
        using var stream = System.Runtime.InteropServices.MemoryMarshal.TryGetArray(bytes, out var segment)
            ? new MemoryStream(segment.Array!, segment.Offset, segment.Count, writable: false)
            : new MemoryStream(bytes.ToArray(), writable: false);
        return EncodeImage(stream, name, preprocessing);
    }

    /// <summary>One image file → raw features [<see cref="EmbedDim"/>], as <see cref="EncodeImageFiles"/> does each of many, but throwing its error.</summary>
    /// <param name="path">The image file.</param>
    /// <param name="preprocessing">Resize, crop and normalization; null for the checkpoint's own.</param>
    /// <exception cref="ArgumentNullException"><paramref name="path"/> is null.</exception>
    /// <exception cref="ArgumentException">The preprocessing crops to another size than <see cref="ImageSize"/>.</exception>
    /// <exception cref="ImageInputException">The file cannot be read or decoded (the message names it).</exception>
    /// <exception cref="ClipException">The model's output for this image is not finite.</exception>
    /// <exception cref="ObjectDisposedException">The model has been disposed.</exception>
    public float[] EncodeImageFile(string path, PreprocessOptions? preprocessing = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        var result = EncodeImageFiles([path], preprocessing).Single();
        return result.Error is null ? result.Features! : throw result.Error;
    }
}
