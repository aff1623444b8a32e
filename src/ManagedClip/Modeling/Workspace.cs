namespace ManagedClip.Modeling;

/// <summary>
/// Scratch buffers for one forward call, sized once for its batch shape and reused by every layer.
/// Each call owns its workspace, which is what makes a model safe to call from several threads at once.
/// </summary>
internal sealed class Workspace
{
    public int Threads { get; }
    public float[] Normed { get; }    // [tokens, width]
    public float[] Qkv { get; }       // [tokens, 3·width]
    public float[] Attended { get; }  // [tokens, width]
    public float[] Hidden { get; }    // [tokens, mlp]

    public Workspace(int tokens, int width, int mlpWidth, int threads)
    {
        Threads = threads;
        Normed = GC.AllocateUninitializedArray<float>(tokens * width);
        Qkv = GC.AllocateUninitializedArray<float>(tokens * 3 * width);
        Attended = GC.AllocateUninitializedArray<float>(tokens * width);
        Hidden = GC.AllocateUninitializedArray<float>(tokens * mlpWidth);
    }
}
