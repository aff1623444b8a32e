namespace ManagedClip.ZeroShot;

/// <summary>A label, template, prompt or query is unusable: empty, without <c>{}</c>, or longer than the model's context. The message says which and why.</summary>
public sealed class PromptException : ClipException
{
    /// <summary>An exception with this message.</summary>
    public PromptException(string message) : base(message) { }
    /// <summary>An exception with this message, caused by <paramref name="inner"/>.</summary>
    public PromptException(string message, Exception inner) : base(message, inner) { }
}
