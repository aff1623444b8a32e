namespace ManagedClip.ZeroShot;

/// <summary>Prompt templates: <c>{}</c> stands for the label (every occurrence is replaced, as Python's <c>t.format(c)</c> does for one).</summary>
public static class PromptTemplates
{
    /// <summary>The placeholder a template must contain.</summary>
    public const string Placeholder = "{}";

    /// <summary>
    /// The default ensemble, written for this project: eight everyday phrasings for photographs of ordinary things
    /// (a plain photo, close-up, cropped, bright, dark, blurry, a picture, a good photo). For a benchmark such as
    /// ImageNet pass that benchmark's own templates (<c>--templates-file</c>).
    /// </summary>
    public static IReadOnlyList<string> Default { get; } =
    [
        "a photo of a {}.",
        "a close-up photo of a {}.",
        "a cropped photo of the {}.",
        "a bright photo of a {}.",
        "a dark photo of the {}.",
        "a blurry photo of a {}.",
        "a picture of the {}.",
        "a good photo of a {}.",
    ];

    /// <summary>Throws <see cref="PromptException"/> for an empty template or one without <c>{}</c>.</summary>
    public static void Validate(string template)
    {
        ArgumentNullException.ThrowIfNull(template);
        if (!template.Contains(Placeholder, StringComparison.Ordinal))
            throw new PromptException($"template '{template}' has no {Placeholder} where the label goes (e.g. 'a photo of a {Placeholder}.')");
    }

    /// <summary>The prompt for one label: the template with every <c>{}</c> replaced by the label.</summary>
    public static string Fill(string template, string label)
    {
        Validate(template);
        return template.Replace(Placeholder, label, StringComparison.Ordinal);
    }
}
