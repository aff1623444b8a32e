using ManagedClip.Tokenization;

namespace ManagedClip.Tests.Tokenization;

/// <summary>Ids against OpenAI's own outputs (shared/reference/tokenizer_cases.json, shared/docs/clip-spec.md §9.7) and against the Python oracle
/// (tests/fixtures/tokenizer/unicode_cases.json, made by make_unicode_cases.py), with both vocabulary formats.</summary>
public class ClipTokenizerParityTests
{
    public static TheoryData<int> ReferenceIndices => TokenizerFixtures.Indices(TokenizerFixtures.ReferenceCases.Count);

    public static TheoryData<int> UnicodeIndices => TokenizerFixtures.Indices(TokenizerFixtures.UnicodeCases.Count);

    [Fact]
    public void ReferenceFileHasAllCases() => Assert.Equal(22, TokenizerFixtures.ReferenceCases.Count);

    [Theory, MemberData(nameof(ReferenceIndices))]
    public void ReferenceCase_Gz(int i) => AssertCase(TokenizerFixtures.Gz, TokenizerFixtures.ReferenceCases[i]);

    [Theory, MemberData(nameof(ReferenceIndices))]
    public void ReferenceCase_HuggingFace(int i) => AssertCase(TokenizerFixtures.Hf, TokenizerFixtures.ReferenceCases[i]);

    [Theory, MemberData(nameof(UnicodeIndices))]
    public void UnicodeCase_Gz(int i) => AssertCase(TokenizerFixtures.Gz, TokenizerFixtures.UnicodeCases[i]);

    [Theory, MemberData(nameof(UnicodeIndices))]
    public void UnicodeCase_HuggingFace(int i) => AssertCase(TokenizerFixtures.Hf, TokenizerFixtures.UnicodeCases[i]);

    [Theory, MemberData(nameof(UnicodeIndices))]
    public void UnicodeCase_Normalize(int i)
    {
        var c = TokenizerFixtures.UnicodeCases[i];
        Assert.Equal(Escape(c.Normalized!), Escape(ClipTokenizer.Normalize(c.Text)));
    }

    [Theory]
    [InlineData("Hello World!", new[] { 49406, 3306, 1002, 256, 49407 })]
    [InlineData("a diagram", new[] { 49406, 320, 22697, 49407 })]
    [InlineData("a dog", new[] { 49406, 320, 1929, 49407 })]
    [InlineData("a cat", new[] { 49406, 320, 2368, 49407 })]
    [InlineData("a photo of a cat", new[] { 49406, 320, 1125, 539, 320, 2368, 49407 })]
    [InlineData("a photo of a dog", new[] { 49406, 320, 1125, 539, 320, 1929, 49407 })]
    [InlineData("This is a photo of a tabby cat", new[] { 49406, 589, 533, 320, 1125, 539, 320, 36145, 2368, 49407 })]
    [InlineData("itap of a {}.", new[] { 49406, 529, 2728, 539, 320, 90, 92, 269, 49407 })]
    [InlineData("A   Photo\tof  the &amp; CAT's 42 toys!!", new[] { 49406, 320, 1125, 539, 518, 261, 2368, 568, 275, 273, 7162, 748, 49407 })]
    public void SpecVectors(string text, int[] expected)
    {
        foreach (var tok in new[] { TokenizerFixtures.Gz, TokenizerFixtures.Hf })
        {
            var ids = tok.Encode(text);
            Assert.Equal(expected, ids[..expected.Length]);
            Assert.All(ids[expected.Length..], id => Assert.Equal(0, id));
        }
    }

    [Fact]
    public void VocabularyLayoutMatchesSpec()
    {
        var gz = TokenizerFixtures.Gz;
        Assert.Equal(49408, gz.VocabularySize);
        Assert.Equal(ClipTokenizer.StartOfText, gz.StartOfTextId);
        Assert.Equal(ClipTokenizer.EndOfText, gz.EndOfTextId);
        Assert.Equal(49408, TokenizerFixtures.Hf.VocabularySize);
        Assert.Equal(ClipTokenizer.StartOfText, TokenizerFixtures.Hf.StartOfTextId);
        Assert.Equal(ClipTokenizer.EndOfText, TokenizerFixtures.Hf.EndOfTextId);
        Assert.Equal(new[] { 64 }, gz.EncodeWithoutSpecialTokens("a").Select(i => i - 256)); // 'a</w>' = 320 = 'a' + 256
        Assert.Equal(new[] { 49406, 49407, 49407 }, gz.EncodeWithoutSpecialTokens("<|startoftext|><|endoftext|><|endoftext|>"));
    }

    [Fact]
    public void LongTextKeepsEotLastAndMatchesEncodeWithoutSpecialTokens()
    {
        var tok = TokenizerFixtures.Gz;
        var text = string.Join(' ', Enumerable.Range(0, 200).Select(i => "cat"));
        var bpe = tok.EncodeWithoutSpecialTokens(text);
        Assert.Equal(200, bpe.Count);
        var ids = tok.Encode(text);
        Assert.Equal(ClipTokenizer.ContextLength, ids.Length);
        Assert.Equal(ClipTokenizer.StartOfText, ids[0]);
        Assert.Equal(bpe.Take(75), ids[1..76]);
        Assert.Equal(ClipTokenizer.EndOfText, ids[76]);

        var exact = string.Join(' ', Enumerable.Range(0, 75).Select(i => "cat"));
        var exactIds = tok.Encode(exact);
        Assert.Equal(2368, exactIds[75]);
        Assert.Equal(ClipTokenizer.EndOfText, exactIds[76]);

        var empty = tok.Encode("");
        Assert.Equal(new[] { 49406, 49407 }, empty[..2]);
        Assert.All(empty[2..], id => Assert.Equal(0, id));
    }

    private static void AssertCase(ClipTokenizer tok, (string Text, string? Normalized, int[] Ids) c)
    {
        var ids = tok.Encode(c.Text);
        Assert.True(c.Ids.SequenceEqual(ids), $"text {Escape(c.Text)}\nexpected {string.Join(",", c.Ids)}\nactual   {string.Join(",", ids)}\nnormalized {Escape(ClipTokenizer.Normalize(c.Text))}");
    }

    internal static string Escape(string s) =>
        string.Concat(s.EnumerateRunes().Select(r => r.Value is >= 0x20 and < 0x7F ? r.ToString() : $"\\u{{{r.Value:X}}}"));
}
