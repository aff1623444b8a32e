namespace ManagedClip.Bench;

/// <summary>The GEMM shapes [M, K] × [K, N] the towers run, at batch 8 (ViT-B/32: 8 × 50 tokens; RN50 at 224 px).</summary>
public static class Shapes
{
    public const double PeakGflopsPerCore = 245.0; // unrolled AVX-512 FMA loop on this Zen 5 (issue 8); AVX2 is half

    public static readonly (string Name, int M, int K, int N)[] All =
    [
        ("vit qkv 400x768x2304", 400, 768, 2304),
        ("vit out 400x768x768", 400, 768, 768),
        ("vit fc 400x768x3072", 400, 768, 3072),
        ("vit proj 400x3072x768", 400, 3072, 768),
        ("vit patch 392x3072x768", 392, 3072, 768),
        ("text fc 616x512x2048 (77 tok)", 616, 512, 2048),
        ("rn50 stem1 100352x27x32", 8 * 112 * 112, 27, 32),
        ("rn50 l1.c2 25088x576x64", 8 * 56 * 56, 576, 64),
        ("rn50 l1.c3 25088x64x256", 8 * 56 * 56, 64, 256),
        ("rn50 l2.c2 6272x1152x128", 8 * 28 * 28, 1152, 128),
        ("rn50 l3.c1 1568x1024x256", 8 * 14 * 14, 1024, 256),
        ("rn50 l3.c2 1568x2304x256", 8 * 14 * 14, 2304, 256),
        ("rn50 l4.c2 392x4608x512", 8 * 7 * 7, 4608, 512),
        ("rn50 l4.c3 392x512x2048", 8 * 7 * 7, 512, 2048),
    ];
}
