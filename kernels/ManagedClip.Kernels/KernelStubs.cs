// TEMPORARY naive stand-ins with the agreed API, replaced by the real kernels at merge.
namespace ManagedClip.Kernels;
public enum Activation { None, QuickGelu, Gelu, Relu }
public sealed class PackedMatrix {
    public int K { get; } public int N { get; } internal float[] B; // [K, N]
    PackedMatrix(float[] b, int k, int n) { B = b; K = k; N = n; }
    public static PackedMatrix FromLinearWeight(ReadOnlySpan<float> w, int outF, int inF) { var b = new float[inF * outF]; for (int o = 0; o < outF; o++) for (int i = 0; i < inF; i++) b[i * outF + o] = w[o * inF + i]; return new(b, inF, outF); }
    public static PackedMatrix FromRowMajor(ReadOnlySpan<float> m, int rows, int cols) => new(m.ToArray(), rows, cols);
}
public static class Gemm {
    public static void Multiply(ReadOnlySpan<float> x, int m, PackedMatrix b, ReadOnlySpan<float> bias, Span<float> y, Activation activation = Activation.None, bool accumulate = false, int maxThreads = 0, SimdLevel? level = null)
        => Multiply(x, b.B, m, b.K, b.N, bias, y, activation, accumulate, maxThreads, level);
    public static void Multiply(ReadOnlySpan<float> x, ReadOnlySpan<float> bm, int m, int k, int n, ReadOnlySpan<float> bias, Span<float> y, Activation activation = Activation.None, bool accumulate = false, int maxThreads = 0, SimdLevel? level = null) {
        var row = new float[n];
        for (int i = 0; i < m; i++) { Array.Clear(row); for (int p = 0; p < k; p++) { float a = x[i * k + p]; for (int j = 0; j < n; j++) row[j] += a * bm[p * n + j]; }
            for (int j = 0; j < n; j++) { float v = row[j] + (bias.IsEmpty ? 0 : bias[j]); v = Act(v, activation); if (accumulate) y[i * n + j] += v; else y[i * n + j] = v; } }
    }
    internal static float Act(float v, Activation a) => a switch { Activation.QuickGelu => v / (1 + MathF.Exp(-1.702f * v)), Activation.Relu => MathF.Max(0, v), Activation.Gelu => (float)(v * 0.5 * (1 + Erf(v / Math.Sqrt(2)))), _ => v };
    static double Erf(double x) { double t = 1 / (1 + 0.5 * Math.Abs(x)); double y = 1 - t * Math.Exp(-x * x - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))); return x >= 0 ? y : -y; }
}
public static class LayerNorm {
    public static void Forward(ReadOnlySpan<float> x, Span<float> y, int rows, int width, ReadOnlySpan<float> g, ReadOnlySpan<float> b, float epsilon = 1e-5f, SimdLevel? level = null) {
        for (int r = 0; r < rows; r++) { double mean = 0, v = 0; for (int i = 0; i < width; i++) mean += x[r * width + i]; mean /= width; for (int i = 0; i < width; i++) { double d = x[r * width + i] - mean; v += d * d; } v /= width; float inv = (float)(1 / Math.Sqrt(v + epsilon)); for (int i = 0; i < width; i++) y[r * width + i] = (float)(x[r * width + i] - mean) * inv * g[i] + b[i]; }
    }
}
public static class Attention {
    public static void Forward(ReadOnlySpan<float> q, int qs, ReadOnlySpan<float> k, ReadOnlySpan<float> v, int kvs, Span<float> o, int os, int batch, int ql, int kl, int heads, int hd, bool causal, int maxThreads = 0, SimdLevel? level = null) {
        var s = new float[kl]; float scale = 1f / MathF.Sqrt(hd);
        for (int b = 0; b < batch; b++) for (int h = 0; h < heads; h++) for (int i = 0; i < ql; i++) {
            int last = causal ? i : kl - 1; float max = float.NegativeInfinity;
            for (int j = 0; j <= last; j++) { float d = 0; for (int c = 0; c < hd; c++) d += q[(b * ql + i) * qs + h * hd + c] * k[(b * kl + j) * kvs + h * hd + c]; s[j] = d * scale; max = MathF.Max(max, s[j]); }
            float sum = 0; for (int j = 0; j <= last; j++) { s[j] = MathF.Exp(s[j] - max); sum += s[j]; }
            for (int c = 0; c < hd; c++) { float acc = 0; for (int j = 0; j <= last; j++) acc += s[j] * v[(b * kl + j) * kvs + h * hd + c]; o[(b * ql + i) * os + h * hd + c] = acc / sum; }
        }
    }
}
