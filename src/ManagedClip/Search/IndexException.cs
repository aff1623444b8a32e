namespace ManagedClip.Search;

/// <summary>An index file is missing, not an index, damaged, of another version, or built with another model. The message names the file.</summary>
public sealed class IndexException : ClipException
{
    /// <summary>An exception with this message.</summary>
    public IndexException(string message) : base(message) { }
    /// <summary>An exception with this message, caused by <paramref name="inner"/>.</summary>
    public IndexException(string message, Exception inner) : base(message, inner) { }
}
