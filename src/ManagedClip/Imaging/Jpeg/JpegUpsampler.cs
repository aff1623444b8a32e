using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using ManagedClip.Kernels;

namespace ManagedClip.Imaging.Jpeg;

/// <summary>
/// Brings one component's samples to the full image resolution the way libjpeg-turbo 2.1 does by default
/// (jdsample.c jinit_upsampler with do_fancy_upsampling TRUE; jdmaster.c use_merged_upsample is FALSE whenever fancy
/// upsampling is on, so the merged upsampler of jdmerge.c is never used):
/// <list type="bullet">
/// <item>full size: copied;</item>
/// <item>half width: h2v1_fancy_upsample (triangle filter, 3/4 and 1/4 weights) when the component is more than 2
/// samples wide, else plain replication;</item>
/// <item>half height: h1v2_fancy_upsample;</item>
/// <item>half width and height: h2v2_fancy_upsample when more than 2 samples wide, else replication;</item>
/// <item>any other integral ratio: int_upsample (replication).</item>
/// </list>
/// The rows above the first and below the last are the edge rows themselves (jdmainct.c's context pointers).
/// With DCT scaling the ratio is between the component's scaled samples and the scaled output, and libjpeg turns fancy
/// upsampling off at 1/8 (min_DCT_scaled_size 1: jdmainct.c has no context rows then), which leaves replication.
/// </summary>
internal sealed class JpegUpsampler
{
    private enum Method { Full, H2V1Fancy, H1V2Fancy, H2V2Fancy, Replicate }

    private readonly Method _method;
    private readonly int _hExpand, _vExpand;
    private readonly byte[] _plane;
    private readonly int _stride, _width, _height;
    private readonly byte[] _scratch; // one upsampled row (any method but Full): _hExpand * downsampled_width samples
    private readonly bool _vectors;   // the AVX2 paths of the h2v1 and h2v2 triangle filters

    /// <summary>Reads the component's samples from <paramref name="plane"/>, <paramref name="stride"/> bytes a row;
    /// <paramref name="width"/> and <paramref name="height"/> are libjpeg's downsampled_width and downsampled_height
    /// (ceil(image width * h / max h), likewise for rows, and scaled with the output). <paramref name="hInGroup"/> x
    /// <paramref name="vInGroup"/> samples become <paramref name="maxH"/> x <paramref name="maxV"/> pixels: jdsample.c's
    /// input group, the sampling factors times DCT_scaled_size / min_DCT_scaled_size (the sampling factors themselves
    /// at full size). <paramref name="fancy"/> is jinit_upsampler's do_fancy; <paramref name="name"/> names the file in
    /// errors; <paramref name="level"/> picks the SIMD path (both give the same bytes).</summary>
    public JpegUpsampler(byte[] plane, int stride, int width, int height, int hInGroup, int vInGroup, int maxH, int maxV, bool fancy, string name, SimdLevel level)
    {
        _vectors = JpegIdct.UsesVectors(level);
        _plane = plane; _stride = stride; _width = width; _height = height;
        if (maxH % hInGroup != 0 || maxV % vInGroup != 0)
            throw new ImageInputException($"image '{name}': JPEG sampling factors {hInGroup}x{vInGroup} with a maximum of {maxH}x{maxV} are not integral ratios (libjpeg refuses them too)");
        _hExpand = maxH / hInGroup; _vExpand = maxV / vInGroup;
        _method = (_hExpand, _vExpand) switch
        {
            (1, 1) => Method.Full,
            (2, 1) when fancy && width > 2 => Method.H2V1Fancy,
            (1, 2) when fancy => Method.H1V2Fancy,
            (2, 2) when fancy && width > 2 => Method.H2V2Fancy,
            _ => Method.Replicate,
        };
        _scratch = _method == Method.Full ? [] : new byte[_hExpand * width];
    }

    private ReadOnlySpan<byte> Row(int y) => _plane.AsSpan(Math.Clamp(y, 0, _height - 1) * _stride, _width);

    /// <summary>Writes output row <paramref name="y"/>; <paramref name="output"/> is the image width, at most
    /// _hExpand * downsampled_width.</summary>
    public void UpsampleRow(int y, Span<byte> output) => UpsampledRow(y, output.Length).CopyTo(output);

    /// <summary>Output row <paramref name="y"/>, <paramref name="outputWidth"/> samples (the image width, at most
    /// _hExpand * downsampled_width): the plane's own row at full size, else this upsampler's scratch row, valid until
    /// its next call. Saves a copy per row and component where the caller only reads the row.</summary>
    public ReadOnlySpan<byte> UpsampledRow(int y, int outputWidth)
    {
        if (_method == Method.Full) return Row(y)[..outputWidth];
        Span<byte> output = _scratch.AsSpan(0, outputWidth);
        switch (_method)
        {
            case Method.Replicate:
            {
                var input = Row(y / _vExpand);
                for (int x = 0; x < output.Length; x++) output[x] = input[x / _hExpand];
                break;
            }
            case Method.H2V1Fancy:
            {
                var input = Row(y);
                H2V1(input);
                break;
            }
            case Method.H1V2Fancy:
            {
                int inRow = y >> 1;
                bool upper = (y & 1) == 0; // the first output row of a pair leans on the row above
                var near = Row(inRow);
                var far = Row(upper ? inRow - 1 : inRow + 1);
                int bias = upper ? 1 : 2;
                for (int x = 0; x < output.Length; x++) output[x] = (byte)((near[x] * 3 + far[x] + bias) >> 2);
                break;
            }
            case Method.H2V2Fancy:
            {
                int inRow = y >> 1;
                bool upper = (y & 1) == 0;
                var near = Row(inRow);
                var far = Row(upper ? inRow - 1 : inRow + 1);
                H2V2(near, far);
                break;
            }
        }
        return output;
    }

    /// <summary>h2v1_fancy_upsample on one row (width &gt; 2): output 2i and 2i+1 are (3 in[i] + in[i∓1] + 1 or 2) / 4,
    /// the end columns copy their sample outward; into the scratch row.</summary>
    private void H2V1(ReadOnlySpan<byte> input)
    {
        int w = _width;
        Span<byte> full = _scratch;
        full[0] = input[0];
        full[1] = (byte)((input[0] * 3 + input[1] + 2) >> 2);
        int i = _vectors ? H2V1Avx2(input, full) : 1;
        for (; i < w - 1; i++)
        {
            int v = input[i] * 3;
            full[2 * i] = (byte)((v + input[i - 1] + 1) >> 2);
            full[2 * i + 1] = (byte)((v + input[i + 1] + 2) >> 2);
        }
        full[2 * w - 2] = (byte)((input[w - 1] * 3 + input[w - 2] + 1) >> 2);
        full[2 * w - 1] = input[w - 1];
    }

    /// <summary>The interior columns of <see cref="H2V1"/> 16 at a time in 16-bit lanes, from column 1 while column
    /// i + 16 exists; returns the first column left for the scalar loop.</summary>
    private unsafe int H2V1Avx2(ReadOnlySpan<byte> input, Span<byte> full)
    {
        int i = 1;
        fixed (byte* p = input, o = full)
        {
            for (; i + 16 <= _width - 1; i += 16)
            {
                var near = Avx2.ConvertToVector256Int16(p + i) * Vector256.Create((short)3);
                var even = (near + Avx2.ConvertToVector256Int16(p + i - 1) + Vector256.Create((short)1)) >> 2;
                var odd = (near + Avx2.ConvertToVector256Int16(p + i + 1) + Vector256.Create((short)2)) >> 2;
                StoreInterleaved(even, odd, o + 2 * i);
            }
        }
        return i;
    }

    /// <summary>h2v2_fancy_upsample for one output row (width &gt; 2): column sums 3 near + far, then the same
    /// triangle horizontally with rounding constants 8 and 7 (out of 16); into the scratch row.</summary>
    private void H2V2(ReadOnlySpan<byte> near, ReadOnlySpan<byte> far)
    {
        int w = _width;
        Span<byte> full = _scratch;
        int first = near[0] * 3 + far[0], last = near[w - 1] * 3 + far[w - 1];
        full[0] = (byte)((first * 4 + 8) >> 4);
        full[1] = (byte)((first * 3 + near[1] * 3 + far[1] + 7) >> 4);
        int i = _vectors ? H2V2Avx2(near, far, full) : 1;
        for (; i < w - 1; i++)
        {
            int thisSum = near[i] * 3 + far[i];
            full[2 * i] = (byte)((thisSum * 3 + near[i - 1] * 3 + far[i - 1] + 8) >> 4);
            full[2 * i + 1] = (byte)((thisSum * 3 + near[i + 1] * 3 + far[i + 1] + 7) >> 4);
        }
        full[2 * w - 2] = (byte)((last * 3 + near[w - 2] * 3 + far[w - 2] + 8) >> 4);
        full[2 * w - 1] = (byte)((last * 4 + 7) >> 4);
    }

    /// <summary>The interior columns of <see cref="H2V2"/> 16 at a time in 16-bit lanes (sums reach 16 x 255); returns
    /// the first column left for the scalar loop.</summary>
    private unsafe int H2V2Avx2(ReadOnlySpan<byte> near, ReadOnlySpan<byte> far, Span<byte> full)
    {
        int i = 1;
        fixed (byte* n = near, f = far, o = full)
        {
            var three = Vector256.Create((short)3);
            for (; i + 16 <= _width - 1; i += 16)
            {
                var previous = Avx2.ConvertToVector256Int16(n + i - 1) * three + Avx2.ConvertToVector256Int16(f + i - 1);
                var current = Avx2.ConvertToVector256Int16(n + i) * three + Avx2.ConvertToVector256Int16(f + i);
                var next = Avx2.ConvertToVector256Int16(n + i + 1) * three + Avx2.ConvertToVector256Int16(f + i + 1);
                var even = (current * three + previous + Vector256.Create((short)8)) >> 4;
                var odd = (current * three + next + Vector256.Create((short)7)) >> 4;
                StoreInterleaved(even, odd, o + 2 * i);
            }
        }
        return i;
    }

    /// <summary>Stores 16 even and 16 odd outputs (each 0..255 in a 16-bit lane) as 32 bytes e0 o0 e1 o1 ...</summary>
    private static unsafe void StoreInterleaved(Vector256<short> even, Vector256<short> odd, byte* output)
    {
        var e = Sse2.PackUnsignedSaturate(even.GetLower(), even.GetUpper());
        var o = Sse2.PackUnsignedSaturate(odd.GetLower(), odd.GetUpper());
        Sse2.Store(output, Sse2.UnpackLow(e, o));
        Sse2.Store(output + 16, Sse2.UnpackHigh(e, o));
    }
}
