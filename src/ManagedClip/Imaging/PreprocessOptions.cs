using System.Text.Json;

namespace ManagedClip.Imaging;

/// <summary>How the center-crop offset <c>(resized − crop) / 2</c> is rounded.</summary>
public enum CropRounding
{
    /// <summary>torchvision <c>center_crop</c>: Python <c>round</c>, half to even (OpenAI / open_clip).</summary>
    HalfToEven,
    /// <summary>HF <c>CLIPImageProcessor.center_crop</c>: floor division.</summary>
    Floor,
}

/// <summary>
/// Preprocessing settings. The defaults are the OpenAI pipeline at 224 (<c>clip/clip.py _transform</c>): resize the shorter side with
/// Pillow bicubic, center crop with round-half-to-even offsets, convert to RGB after the crop, <c>/255</c> in float32,
/// normalize with the CLIP mean/std.
/// </summary>
public sealed record PreprocessOptions
{
    /// <summary>Pillow's <c>MAX_IMAGE_PIXELS</c> (1024·1024·1024 / 4 / 3): Pillow warns above it, we refuse.</summary>
    public const long DefaultMaxPixels = 89_478_485;

    /// <summary>OpenAI CLIP's per-channel normalization mean (RGB).</summary>
    public static readonly float[] ClipMean = [0.48145466f, 0.4578275f, 0.40821073f];
    /// <summary>OpenAI CLIP's per-channel normalization standard deviation (RGB).</summary>
    public static readonly float[] ClipStd = [0.26862954f, 0.26130258f, 0.27577711f];

    /// <summary>Target of the resize: the shorter side (or both sides when <see cref="ResizeToSquare"/>).</summary>
    public int Size { get; init; } = 224;
    /// <summary>Side of the square center crop; the output tensor is [3, CropSize, CropSize].</summary>
    public int CropSize { get; init; } = 224;
    /// <summary>Per-channel mean (RGB), float32.</summary>
    public float[] Mean { get; init; } = (float[])ClipMean.Clone();
    /// <summary>Per-channel std (RGB), float32.</summary>
    public float[] Std { get; init; } = (float[])ClipStd.Clone();
    /// <summary>How the center crop's offset is rounded: half to even (OpenAI) or floor (Hugging Face).</summary>
    public CropRounding Crop { get; init; } = CropRounding.HalfToEven;
    /// <summary>HF order: convert to RGB before resizing (alpha dropped, palette expanded, then bicubic). OpenAI: false.</summary>
    public bool ConvertToRgbFirst { get; init; }
    /// <summary>Apply the EXIF orientation tag before anything else. Neither reference pipeline does (<c>clip/clip.py _transform</c>, transformers <c>CLIPImageProcessor</c>).</summary>
    public bool ApplyExifOrientation { get; init; }
    /// <summary>
    /// Decode JPEGs at 1/2, 1/4 or 1/8 of their size (libjpeg's DCT scaling) before the resize, choosing the scale as
    /// Pillow's <c>draft("RGB", (Size, Size))</c> does: the smallest that keeps both sides at least <see cref="Size"/>.
    /// The pixels are exactly Pillow's with that draft call, which is not what the original pipeline does; large photos
    /// decode several times faster. Other formats are unaffected.
    /// </summary>
    public bool ReducedSizeDecoding { get; init; }
    /// <summary>Images whose header claims more pixels than this are refused before decoding.</summary>
    public long MaxPixels { get; init; } = DefaultMaxPixels;
    /// <summary>Resampling filter for the resize (palette and bilevel sources always use nearest, as in Pillow).</summary>
    public PillowFilter Resample { get; init; } = PillowFilter.Bicubic;
    /// <summary>
    /// null: torchvision ToTensor, <c>(float)u8 / 255f</c>. Otherwise HF rescale: <c>(float)((double)u8 · factor)</c>.
    /// </summary>
    public double? RescaleFactor { get; init; }
    /// <summary>Resize both sides to <see cref="Size"/> (HF <c>size: {height, width}</c>) instead of the shorter side.</summary>
    public bool ResizeToSquare { get; init; }

    /// <summary>The OpenAI / open_clip pipeline at resolution <paramref name="size"/>.</summary>
    public static PreprocessOptions OpenAI(int size)
    {
        CheckSize(size, nameof(size));
        return new PreprocessOptions { Size = size, CropSize = size };
    }

    /// <summary>
    /// The preprocessing a checkpoint expects: a Hugging Face folder's preprocessor_config.json when present, else the original
    /// OpenAI pipeline at the model's resolution. Reads the checkpoint's header and config only, never its weights.
    /// </summary>
    public static PreprocessOptions ForCheckpoint(string checkpointPath)
    {
        using var checkpoint = Checkpoints.Checkpoint.Open(checkpointPath);
        return ForCheckpoint(checkpoint);
    }

    internal static PreprocessOptions ForCheckpoint(Checkpoints.Checkpoint checkpoint)
    {
        string config = Path.Combine(checkpoint.Folder, "preprocessor_config.json");
        int size = checkpoint.Config.Vision.ImageSize;
        return checkpoint.Format == Checkpoints.CheckpointFormat.HuggingFace && File.Exists(config) ? FromHuggingFace(config, size) : OpenAI(size);
    }

    /// <summary>HF <c>CLIPImageProcessor</c> (slow, PIL-based) defaults at <paramref name="size"/>.</summary>
    public static PreprocessOptions HuggingFace(int size)
    {
        CheckSize(size, nameof(size));
        return new PreprocessOptions
        {
            Size = size, CropSize = size, Crop = CropRounding.Floor, ConvertToRgbFirst = true, RescaleFactor = 1.0 / 255,
        };
    }

    /// <summary>
    /// Reads an HF <c>preprocessor_config.json</c>: <c>size</c> (int, <c>{"shortest_edge"}</c> or square
    /// <c>{"height","width"}</c>), <c>crop_size</c>, <c>image_mean</c>, <c>image_std</c>, <c>resample</c>,
    /// <c>do_resize</c>, <c>do_center_crop</c>, <c>do_rescale</c>/<c>rescale_factor</c>, <c>do_normalize</c>,
    /// <c>do_convert_rgb</c>. Missing fields take the <c>CLIPImageProcessor</c> defaults, with
    /// <paramref name="fallbackSize"/> for <c>size</c>/<c>crop_size</c>. Non-square crops, <c>do_resize: false</c> and
    /// <c>do_center_crop: false</c> are refused (the engine needs a square [3,R,R] input).
    /// </summary>
    public static PreprocessOptions FromHuggingFace(string preprocessorConfigPath, int fallbackSize)
    {
        ArgumentNullException.ThrowIfNull(preprocessorConfigPath);
        CheckSize(fallbackSize, nameof(fallbackSize));
        string where = $"preprocessor config '{preprocessorConfigPath}'";
        byte[] json;
        try { json = File.ReadAllBytes(preprocessorConfigPath); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new ImageInputException($"cannot read {where}: {ex.Message}", ex);
        }
        try
        {
            using JsonDocument doc = JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
            JsonElement root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new ImageInputException($"{where} is not a JSON object");

            var o = HuggingFace(fallbackSize);
            if (!GetBool(root, "do_resize", true, where)) throw new ImageInputException($"{where}: do_resize=false is not supported");
            if (!GetBool(root, "do_center_crop", true, where)) throw new ImageInputException($"{where}: do_center_crop=false is not supported");

            int size = fallbackSize;
            bool square = false;
            if (root.TryGetProperty("size", out JsonElement s) && s.ValueKind != JsonValueKind.Null)
            {
                if (s.ValueKind == JsonValueKind.Number) size = GetInt(s, "size", where);
                else if (s.ValueKind == JsonValueKind.Object)
                {
                    if (s.TryGetProperty("shortest_edge", out JsonElement se)) size = GetInt(se, "size.shortest_edge", where);
                    else if (s.TryGetProperty("height", out JsonElement hh) && s.TryGetProperty("width", out JsonElement ww))
                    {
                        int h = GetInt(hh, "size.height", where), w = GetInt(ww, "size.width", where);
                        if (h != w) throw new ImageInputException($"{where}: non-square size {w}x{h} is not supported");
                        size = h;
                        square = true;
                    }
                    else throw new ImageInputException($"{where}: 'size' needs shortest_edge or height/width");
                }
                else throw new ImageInputException($"{where}: 'size' must be a number or an object");
            }
            int crop = size;
            if (root.TryGetProperty("crop_size", out JsonElement c) && c.ValueKind != JsonValueKind.Null)
            {
                if (c.ValueKind == JsonValueKind.Number) crop = GetInt(c, "crop_size", where);
                else if (c.ValueKind == JsonValueKind.Object && c.TryGetProperty("height", out JsonElement ch) && c.TryGetProperty("width", out JsonElement cw))
                {
                    int h = GetInt(ch, "crop_size.height", where), w = GetInt(cw, "crop_size.width", where);
                    if (h != w) throw new ImageInputException($"{where}: non-square crop_size {w}x{h} is not supported");
                    crop = h;
                }
                else throw new ImageInputException($"{where}: 'crop_size' must be a number or {{height, width}}");
            }
            float[] mean = GetTriple(root, "image_mean", ClipMean, where);
            float[] std = GetTriple(root, "image_std", ClipStd, where);
            foreach (float v in std)
                if (!(v > 0)) throw new ImageInputException($"{where}: image_std must be positive");
            if (!GetBool(root, "do_normalize", true, where)) { mean = [0f, 0f, 0f]; std = [1f, 1f, 1f]; }

            double rescale = 1.0 / 255;
            if (root.TryGetProperty("rescale_factor", out JsonElement rf) && rf.ValueKind != JsonValueKind.Null)
            {
                if (rf.ValueKind != JsonValueKind.Number || !rf.TryGetDouble(out rescale) || !(rescale > 0))
                    throw new ImageInputException($"{where}: 'rescale_factor' must be a positive number");
            }
            if (!GetBool(root, "do_rescale", true, where)) rescale = 1.0;

            PillowFilter resample = PillowFilter.Bicubic;
            if (root.TryGetProperty("resample", out JsonElement rs) && rs.ValueKind != JsonValueKind.Null)
            {
                int r = GetInt(rs, "resample", where, allowZero: true);
                if (r > 5) throw new ImageInputException($"{where}: unknown resample {r} (PIL filters are 0..5)");
                resample = (PillowFilter)r;
            }
            bool convertFirst = GetBool(root, "do_convert_rgb", true, where);

            return o with
            {
                Size = size, CropSize = crop, ResizeToSquare = square, Mean = mean, Std = std, RescaleFactor = rescale,
                Resample = resample, ConvertToRgbFirst = convertFirst,
            };
        }
        catch (JsonException ex)
        {
            throw new ImageInputException($"{where} is not valid JSON: {ex.Message}", ex);
        }
    }

    private static void CheckSize(int size, string name)
    {
        if (size <= 0 || size > 16384) throw new ArgumentOutOfRangeException(name, size, "size must be in 1..16384");
    }

    private static bool GetBool(JsonElement root, string name, bool dflt, string where)
    {
        if (!root.TryGetProperty(name, out JsonElement e) || e.ValueKind == JsonValueKind.Null) return dflt;
        return e.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new ImageInputException($"{where}: '{name}' must be true or false"),
        };
    }

    private static int GetInt(JsonElement e, string name, string where, bool allowZero = false)
    {
        if (e.ValueKind == JsonValueKind.Number)
        {
            if (e.TryGetInt32(out int v) && (v > 0 || (allowZero && v == 0)) && v <= 16384) return v;
            if (e.TryGetDouble(out double d) && d == Math.Floor(d) && (d > 0 || (allowZero && d == 0)) && d <= 16384) return (int)d;
        }
        throw new ImageInputException($"{where}: '{name}' must be a {(allowZero ? "non-negative" : "positive")} integer ≤ 16384");
    }

    private static float[] GetTriple(JsonElement root, string name, float[] dflt, string where)
    {
        if (!root.TryGetProperty(name, out JsonElement e) || e.ValueKind == JsonValueKind.Null) return (float[])dflt.Clone();
        if (e.ValueKind == JsonValueKind.Number && e.TryGetDouble(out double one)) return [(float)one, (float)one, (float)one];
        if (e.ValueKind != JsonValueKind.Array || e.GetArrayLength() != 3)
            throw new ImageInputException($"{where}: '{name}' must be a list of 3 numbers");
        var r = new float[3];
        int i = 0;
        foreach (JsonElement x in e.EnumerateArray())
        {
            if (x.ValueKind != JsonValueKind.Number || !x.TryGetDouble(out double d) || !double.IsFinite(d))
                throw new ImageInputException($"{where}: '{name}' must be a list of 3 numbers");
            r[i++] = (float)d;
        }
        return r;
    }
}
