using ManagedClip.Tests.Support;

namespace ManagedClip.Tests.Modeling;

/// <summary>
/// The text tower runs only up to the batch's last end-of-text position. The causal mask hides every later position from
/// the pooled one, and each kernel computes a row in an order that does not depend on how many rows there are, so the
/// result is not merely close but bit-identical to running all 77 positions.
/// </summary>
public sealed class TextShortcutTests : IDisposable
{
    readonly string _folder = Directory.CreateTempSubdirectory("managedclip-shortcut-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    static int[] Prompt(int tokens, int seed, int context = 77)
    {
        var random = new Random(seed);
        var row = new int[context];
        row[0] = 49406;
        for (int i = 1; i < tokens - 1; i++) row[i] = random.Next(1, 49405);
        row[tokens - 1] = 49407;
        return row;
    }

    [Theory]
    [InlineData("vit-w192-l3-openai-f32")]
    [InlineData("vit-b32-openai-f32")]
    public void PooledFeaturesAreBitEqualWithAndWithoutTheShortcut(string name)
    {
        var spec = SyntheticCases.Load(name);
        string path = SyntheticCheckpoint.Write(Path.Combine(_folder, name + ".safetensors"), spec);
        foreach (int threads in new[] { 1, 2 })
        {
            using var model = ClipModel.Load(path, new ClipModelOptions { MaxThreads = threads });
            // One short prompt alone, a batch of mixed lengths (the shortcut stops at the longest), and a full-length prompt.
            int[][][] batches =
            [
                [Prompt(5, 1)],
                [Prompt(8, 2), Prompt(3, 3), Prompt(14, 4), Prompt(2, 5)],
                [Prompt(77, 6), Prompt(9, 7)],
            ];
            foreach (var ids in batches)
            {
                var shortcut = model.EncodeTokens(ids);
                var full = model.EncodeTokens(ids, fullContext: true);
                for (int b = 0; b < ids.Length; b++) Assert.Equal(full[b], shortcut[b]);
            }
            // A prompt's features do not depend on the other prompts of its batch.
            var alone = model.EncodeTokens([Prompt(3, 3)])[0];
            var batched = model.EncodeTokens(batches[1])[1];
            Assert.Equal(alone, batched);
        }
    }
}
