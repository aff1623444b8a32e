using System.Runtime.CompilerServices;
using ManagedClip.Checkpoints;
using ManagedClip.Imaging;
using ManagedClip.Kernels;
using ManagedClip.Tokenization;

namespace ManagedClip.Cli;

/// <summary>Options shared by the commands that load a model.</summary>
internal static class ModelOptions
{
    public static readonly (string, string) Model = ("--model PATH", "checkpoint: an OpenAI/open_clip .safetensors file, or a folder of either layout");
    public static readonly (string, string) Vocab = ("--vocab PATH", "tokenizer vocabulary: bpe_simple_vocab_16e6.txt.gz, vocab.json (merges.txt beside it) or a folder; default: next to the weights");
    public static readonly (string, string) Threads = ("--threads N", "threads for the kernels (default: one per core)");

    public static (string Name, string Help)[] Names(params (string, string)[] options) => options.Select(o => (o.Item1.Split(' ')[0], o.Item1 + ": " + o.Item2)).ToArray();

    public static readonly (string, string) Device = Devices.Option;

    public static ClipModel Load(ParsedArguments args) =>
        ClipModel.Load(args.Required("--model"), new ClipModelOptions
        {
            MaxThreads = args.Int("--threads", 1, 1024) ?? 0,
            VocabularyPath = args.Value("--vocab"),
            Device = Devices.Open(args.Value("--device")),
        });
}

internal sealed class InfoCommand : ICommand
{
    public CommandSpec Spec { get; } = new("info", "info [--model PATH] [--json]",
        "Show the runtime (JIT or Native AOT), the SIMD path the kernels use, the devices --device can name, and with --model the checkpoint's architecture.",
        ModelOptions.Names(ModelOptions.Model), [], ["managedclip info", "managedclip info --model clip-vit-base-patch32/ --json"]);

    public int Run(ParsedArguments args, Output output)
    {
        if (args.Inputs.Count > 0) throw new UsageException($"info takes no inputs, got '{args.Inputs[0]}'");
        string runtime = RuntimeFeature.IsDynamicCodeSupported ? "JIT" : "AOT";
        var simd = Simd.Best;
        string? modelPath = args.Value("--model");
        using var checkpoint = modelPath is null ? null : Checkpoint.Open(modelPath);
        var config = checkpoint?.Config;

        if (output.Json)
        {
            output.WriteJson(w =>
            {
                w.WriteString("runtime", runtime);
                w.WriteString("simd", Simd.Describe(simd));
                w.WriteNumber("vector_bits", (int)simd);
                w.WriteNumber("cores", Environment.ProcessorCount);
                w.WriteString("framework", System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription);
                w.WriteBoolean("gpu_backend", Devices.HaveGpu);
                w.WriteStartArray("devices");
                foreach (var (kind, name, memory) in Devices.List())
                {
                    w.WriteStartObject();
                    w.WriteString("device", kind);
                    w.WriteString("name", name);
                    if (memory > 0) w.WriteNumber("memory_bytes", memory);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                if (checkpoint is null || config is null) return;
                w.WriteStartObject("model");
                w.WriteString("path", checkpoint.SourcePath);
                w.WriteString("format", checkpoint.Format == CheckpointFormat.OpenAI ? "openai" : "huggingface");
                w.WriteString("architecture", config.ModelName);
                w.WriteString("dtype", checkpoint.StorageDType.ToString());
                w.WriteNumber("parameters", checkpoint.ParameterCount);
                w.WriteNumber("embed_dim", config.EmbedDim);
                w.WriteStartObject("vision");
                var v = config.Vision;
                w.WriteString("type", v.Architecture == VisionArchitecture.VisionTransformer ? "vit" : "resnet");
                w.WriteNumber("width", v.Width);
                w.WriteNumber("layers", v.Layers);
                w.WriteNumber("heads", v.Heads);
                if (v is VisionTransformerConfig vit) w.WriteNumber("patch_size", vit.PatchSize);
                else { w.WriteStartArray("blocks"); foreach (int b in ((ModifiedResNetConfig)v).Blocks) w.WriteNumberValue(b); w.WriteEndArray(); }
                w.WriteNumber("resolution", v.ImageSize);
                w.WriteString("activation", v.Activation.ToString());
                w.WriteEndObject();
                var t = config.Text;
                w.WriteStartObject("text");
                w.WriteNumber("width", t.Width);
                w.WriteNumber("layers", t.Layers);
                w.WriteNumber("heads", t.Heads);
                w.WriteNumber("context_length", t.ContextLength);
                w.WriteNumber("vocab_size", t.VocabSize);
                w.WriteString("activation", t.Activation.ToString());
                w.WriteEndObject();
                w.WriteEndObject();
            });
            return 0;
        }
        output.WriteLine($"runtime      {runtime} ({System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription})");
        output.WriteLine($"simd         {Simd.Describe(simd)}, {(int)simd}-bit vectors");
        output.WriteLine($"cores        {Environment.ProcessorCount}");
        foreach (var (kind, name, memory) in Devices.List())
            output.WriteLine($"device       {kind,-10} {name}{(memory > 0 ? $", {memory / (1024.0 * 1024 * 1024):0.#} GiB" : "")}");
        if (!Devices.HaveGpu) output.WriteLine("             (the GPU devices need the JIT build: this is the Native AOT one)");
        if (checkpoint is null || config is null) return 0;
        var vc = config.Vision;
        var tc = config.Text;
        output.WriteLine($"model        {checkpoint.SourcePath}");
        output.WriteLine($"format       {(checkpoint.Format == CheckpointFormat.OpenAI ? "OpenAI/open_clip" : "Hugging Face CLIPModel")}, {checkpoint.StorageDType}");
        output.WriteLine($"architecture {config.ModelName}");
        output.WriteLine(vc switch
        {
            VisionTransformerConfig vit => $"image tower  ViT: width {vit.Width}, {vit.Layers} layers, {vit.Heads} heads, patch {vit.PatchSize}, {vit.ImageSize} px",
            ModifiedResNetConfig resnet => $"image tower  ModifiedResNet: stem width {resnet.Width}, blocks {string.Join(",", resnet.Blocks)}, pool heads {resnet.Heads}, {resnet.ImageSize} px",
            _ => throw new InvalidOperationException($"unknown image tower {vc.GetType().Name}"),
        });
        output.WriteLine($"text tower   width {tc.Width}, {tc.Layers} layers, {tc.Heads} heads, context {tc.ContextLength}, vocabulary {tc.VocabSize}");
        output.WriteLine($"embedding    {config.EmbedDim}");
        output.WriteLine($"parameters   {checkpoint.ParameterCount:N0}");
        return 0;
    }
}

internal sealed class TokenizeCommand : ICommand
{
    public CommandSpec Spec { get; } = new("tokenize", "tokenize (--vocab PATH | --model PATH) [--json] -- TEXT...",
        "Tokenize texts exactly as OpenAI's clip.tokenize(truncate=True): 77 ids, start and end tokens, zero padded.",
        ModelOptions.Names(ModelOptions.Vocab, ModelOptions.Model), [],
        ["managedclip tokenize --vocab bpe_simple_vocab_16e6.txt.gz --json -- \"a photo of a cat\""]);

    public int Run(ParsedArguments args, Output output)
    {
        string? vocab = args.Value("--vocab"), model = args.Value("--model");
        if (vocab is null && model is null) throw new UsageException("tokenize needs --vocab PATH or --model PATH");
        if (args.Inputs.Count == 0) throw new UsageException("no text given (put texts after --)");
        var tokenizer = ClipTokenizer.Discover(vocab, model);
        foreach (var text in args.Inputs)
        {
            int[] ids = tokenizer.Encode(text);
            if (output.Json)
                output.WriteJson(w =>
                {
                    w.WriteString("input", text);
                    w.WriteStartArray("ids");
                    foreach (int id in ids) w.WriteNumberValue(id);
                    w.WriteEndArray();
                });
            else
                output.WriteLine($"{text}\t{string.Join(" ", ids.Reverse().SkipWhile(id => id == 0).Reverse())}");
        }
        return output.ExitCode;
    }
}

internal sealed class EmbedTextCommand : ICommand
{
    public CommandSpec Spec { get; } = new("embed-text", "embed-text --model PATH [--vocab PATH] [--device D] [--raw] [--json] -- TEXT...",
        "Encode texts with the text tower. Embeddings are L2-normalized unless --raw.",
        ModelOptions.Names(ModelOptions.Model, ModelOptions.Vocab, ModelOptions.Threads, ModelOptions.Device),
        [("--raw", "print the projected features before L2 normalization")],
        ["managedclip embed-text --model clip-vit-base-patch32/ --json -- \"a photo of a cat\" \"a diagram\""]);

    public int Run(ParsedArguments args, Output output)
    {
        if (args.Inputs.Count == 0) throw new UsageException("no text given (put texts after --)");
        using var model = ModelOptions.Load(args);
        var features = model.EncodeTexts(args.Inputs);
        for (int i = 0; i < features.Length; i++) Print(output, args.Inputs[i], features[i], args.Has("--raw"));
        return output.ExitCode;
    }

    /// <summary>Prints one input's embedding, or its error when the features are not finite (the batch goes on).</summary>
    internal static void Print(Output output, string input, float[] features, bool raw)
    {
        if (!ClipModel.IsFinite(features)) { output.Fail(input, ClipModel.NotFinite(input).Message); return; }
        var embedding = raw ? features : ClipModel.Normalize(features);
        if (output.Json)
            output.WriteJson(w =>
            {
                w.WriteString("input", input);
                Output.WriteFloats(w, "embedding", embedding);
            });
        else
            output.WriteLine($"{input}\t{Output.Preview(embedding)}");
    }
}

/// <summary>The image-decoding flags of every command that reads image files (embed-image, classify, index, preprocess).</summary>
internal static class ImageFlags
{
    public static readonly (string, string) ExifOrientation = ("--exif-orientation", "rotate images as their EXIF orientation says (the original pipeline ignores it)");
    public static readonly (string, string) FastDecode = ("--fast-decode",
        "decode JPEGs at 1/2, 1/4 or 1/8 size before the resize, as Pillow's draft() does: about half the decoding and resizing time " +
        "on large photos, but not the original pipeline's pixels (see README for the effect on embeddings)");
    public static readonly (string, string)[] Both = [ExifOrientation, FastDecode];

    public static PreprocessOptions Apply(ParsedArguments args, PreprocessOptions options) =>
        options with { ApplyExifOrientation = args.Has("--exif-orientation"), ReducedSizeDecoding = args.Has("--fast-decode") };
}

internal sealed class EmbedImageCommand : ICommand
{
    public CommandSpec Spec { get; } = new("embed-image", "embed-image --model PATH [--device D] [--raw] [--exif-orientation] [--fast-decode] [--json] INPUT...",
        "Encode images with the image tower. INPUT is an image file (JPEG, PNG, GIF, BMP, TIFF, WebP, PBM, TGA), preprocessed as the original CLIP does, " +
        "or a .npy float32 tensor [3,R,R] or [N,3,R,R] already preprocessed (one result per row, named FILE.npy#i). A file that fails is reported and the rest still run.",
        ModelOptions.Names(ModelOptions.Model, ModelOptions.Threads, ModelOptions.Device),
        [("--raw", "print the projected features before L2 normalization"), .. ImageFlags.Both],
        ["managedclip embed-image --model clip-vit-base-patch32/ --json cat.jpg dog.png", "managedclip embed-image --model ViT-B-32.safetensors batch.npy"]);

    public int Run(ParsedArguments args, Output output)
    {
        if (args.Inputs.Count == 0) throw new UsageException("no image given");
        using var model = ModelOptions.Load(args);
        var preprocessing = ImageFlags.Apply(args, model.DefaultPreprocessOptions());
        bool raw = args.Has("--raw");
        void Print(string name, float[] features) => EmbedTextCommand.Print(output, name, features, raw);

        // Runs of image files go through the batched, prefetching path; .npy tensors are read as they come. Output keeps input order.
        var images = new List<string>();
        void FlushImages()
        {
            foreach (var result in model.EncodeImageFiles(images, preprocessing))
                if (result.Features is not null) Print(result.Path, result.Features);
                else output.Fail(result.Path, result.Error!.Message);
            images.Clear();
        }
        foreach (var input in args.Inputs)
        {
            if (!input.EndsWith(".npy", StringComparison.OrdinalIgnoreCase)) { images.Add(input); continue; }
            FlushImages();
            try
            {
                var (names, pixels, count) = ReadTensor(input, model.ImageSize);
                var features = model.EncodeImages(pixels, count);
                for (int i = 0; i < count; i++) Print(names[i], features[i]);
            }
            catch (ClipException e) { output.Fail(input, e.Message); }
        }
        FlushImages();
        return output.ExitCode;
    }

    static (string[] Names, float[] Pixels, int Count) ReadTensor(string input, int r)
    {
        var (data, shape) = NpyFile.Read(input);
        if (shape.Length == 3 && shape[0] == 3 && shape[1] == r && shape[2] == r) return ([input], data, 1);
        if (shape.Length == 4 && shape[0] == 0) throw new ImageInputException($"{input}: tensor of shape ({string.Join(", ", shape)}) holds no images");
        if (shape.Length == 4 && shape[1] == 3 && shape[2] == r && shape[3] == r)
            return (Enumerable.Range(0, shape[0]).Select(i => $"{input}#{i}").ToArray(), data, shape[0]);
        throw new ImageInputException($"{input}: tensor has shape ({string.Join(", ", shape)}), expected (3, {r}, {r}) or (N, 3, {r}, {r}) for this model");
    }
}

internal sealed class PreprocessCommand : ICommand
{
    public CommandSpec Spec { get; } = new("preprocess", "preprocess (--size R | --model PATH) [--exif-orientation] [--fast-decode] [--json] IMAGE --out FILE.npy",
        "Decode and preprocess one image exactly as the original CLIP pipeline does (Pillow bicubic resize of the shorter side, center crop, normalize) " +
        "and write the float32 [3,R,R] tensor as .npy. With --model, R and the pipeline come from the checkpoint (a Hugging Face folder's preprocessor_config.json).",
        ModelOptions.Names(("--size R", "output resolution R (224 for ViT-B/32)"), ModelOptions.Model, ("--out FILE", "the .npy file to write")),
        ImageFlags.Both,
        ["managedclip preprocess --size 224 cat.jpg --out cat.224.npy"]);

    public int Run(ParsedArguments args, Output output)
    {
        if (args.Inputs.Count != 1) throw new UsageException($"preprocess takes one image, got {args.Inputs.Count}");
        string input = args.Inputs[0], target = args.Required("--out");
        int? size = args.Int("--size", 1, 4096);
        string? modelPath = args.Value("--model");
        PreprocessOptions options;
        if (modelPath is not null)
        {
            // The checkpoint's header and config, not its weights: nothing is packed to learn R and the pipeline.
            options = PreprocessOptions.ForCheckpoint(modelPath);
            if (size is not null && size != options.CropSize) throw new UsageException($"--size {size} disagrees with the model's {options.CropSize} px");
        }
        else options = PreprocessOptions.OpenAI(size ?? throw new UsageException("preprocess needs --size R or --model PATH"));
        options = ImageFlags.Apply(args, options);

        var pixels = new ImagePreprocessor(options).Preprocess(input);
        int[] shape = [3, options.CropSize, options.CropSize];
        try { NpyFile.Write(target, pixels, shape); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new ImageInputException($"{target}: cannot write ({e.Message})", e); }
        if (output.Json)
            output.WriteJson(w =>
            {
                w.WriteString("input", input);
                w.WriteString("output", target);
                w.WriteStartArray("shape");
                foreach (int d in shape) w.WriteNumberValue(d);
                w.WriteEndArray();
            });
        else output.WriteLine($"{input} -> {target} (float32 [{string.Join(", ", shape)}])");
        return 0;
    }
}
