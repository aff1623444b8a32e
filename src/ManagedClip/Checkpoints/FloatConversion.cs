using System.Buffers.Binary;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace ManagedClip.Checkpoints;

/// <summary>Up-casts stored tensor bytes (little-endian) to fp32, once, at load time.</summary>
internal static class FloatConversion
{
    public static void ToSingle(ReadOnlySpan<byte> source, TensorDType dtype, Span<float> destination, string what)
    {
        bool littleEndian = BitConverter.IsLittleEndian;
        switch (dtype)
        {
            case TensorDType.F32:
                if (littleEndian) MemoryMarshal.Cast<byte, float>(source).CopyTo(destination);
                else for (int i = 0; i < destination.Length; i++) destination[i] = BinaryPrimitives.ReadSingleLittleEndian(source[(4 * i)..]);
                break;
            case TensorDType.F16:
                if (littleEndian) TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(source), destination);
                else for (int i = 0; i < destination.Length; i++) destination[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(source[(2 * i)..]);
                break;
            case TensorDType.BF16:
                // bfloat16 is the top half of an fp32: widening is a 16-bit shift, exact.
                for (int i = 0; i < destination.Length; i++)
                    destination[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(source[(2 * i)..]) << 16);
                break;
            case TensorDType.F64:
                for (int i = 0; i < destination.Length; i++) destination[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(source[(8 * i)..]);
                break;
            default:
                throw new CheckpointException($"{what}: dtype {dtype} is not a floating-point type");
        }
    }
}
